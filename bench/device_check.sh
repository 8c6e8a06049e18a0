#!/usr/bin/env bash
# The first checks on a GPU machine: at most 8 minutes (each stage under its own timeout).
#
#   bench/device_check.sh OUT_DIR
#
# Writes JSON into OUT_DIR: devices.json; neuron_tests.json (+ .xml: the neuron goldens and
# gradient tests run by pytest on the GPU); bf16.jsonl (bfloat16 against float32: spike
# mismatches and the largest deviation of each neuron's gradients, and of a small
# ResNet-19's logits); neuron_layer.jsonl (bench.neuron_layer --device gpu) and, where torch
# and SpikingJelly are installed, neuron_layer_peers.jsonl (the same with SpikingJelly's
# nodes, each in a process of its own); model_step_remat_{off,on}.jsonl (bench.model_step,
# full ResNet-19 at the paper's batch 64, T = 4, with the device's measured peak memory,
# one process each); model_step_memory.jsonl (ResNet-19's kept bytes per neuron-step, XLA's
# plan and the measured peak at T = 2, 6, 16 and batch 32, 64, one process each);
# summary.json (each stage's exit code, 124 for a timeout).
# Fails at once if JAX sees no GPU; otherwise runs every stage and exits non-zero if any
# stage failed.
set -uo pipefail
OUT=${1:?usage: bench/device_check.sh OUT_DIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export JAX_PLATFORMS=cuda

python - > "$OUT/devices.json" <<'EOF' || { echo "device_check: no GPU visible to JAX" >&2; exit 1; }
import json
import jax

devices = jax.devices()
if devices[0].platform != "gpu":
  raise SystemExit(f"device_check: no GPU visible to JAX, got {devices}")
print(json.dumps({"devices": [str(d) for d in devices], "kind": devices[0].device_kind,
                  "jax": jax.__version__}))
EOF
cat "$OUT/devices.json"

declare -A RC
stage() {  # stage NAME SECONDS COMMAND...: runs COMMAND under a timeout, records its exit code
  local name=$1 seconds=$2
  shift 2
  echo "== $name" >&2
  timeout "$seconds" "$@"
  RC[$name]=$?
}

stage neuron_tests 110 python -m pytest -q -p no:cacheprovider \
  tests/neurons/test_glif.py tests/neurons/test_klif_lif.py tests/neurons/test_reference_values.py \
  tests/test_surrogates.py --junitxml="$OUT/neuron_tests.xml"
python - "$OUT/neuron_tests.xml" > "$OUT/neuron_tests.json" <<'EOF'
import json
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
keys = ("tests", "failures", "errors", "skipped", "time")
failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
          if c.find("failure") is not None or c.find("error") is not None]
print(json.dumps({**{k: suite.get(k) for k in keys}, "failed": failed}))
EOF

stage bf16 80 python - > "$OUT/bf16.jsonl" <<'EOF'
import json

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import models, neurons

T, SHAPE = 6, (16, 16, 16, 64)
x = 1.5 * jax.random.uniform(jax.random.key(0), (T, *SHAPE))
cotangent = jax.random.normal(jax.random.key(1), x.shape)
cases = {
  "glif": (neurons.glif, neurons.glif_params(SHAPE[-1], T, key=jax.random.key(2))),
  "klif": (neurons.klif, neurons.klif_params()),
  "plif": (neurons.plif, neurons.plif_params()),
}


def run(fn, p, dtype):
  loss = lambda p, x: jnp.sum(fn(p, x)[0].astype(jnp.float32) * cotangent)
  spikes = fn(p, x.astype(dtype))[0]
  return spikes.astype(jnp.float32), jax.grad(loss, argnums=(0, 1))(p, x.astype(dtype))


def deviation(a, b):
  """Max and mean |a − b|, relative to max and mean |a| (a: float32, b: bfloat16)."""
  a, b = (jnp.asarray(v, jnp.float32) for v in (a, b))
  error, scale = jnp.abs(a - b), jnp.abs(a) + 1e-12
  return {"max": float(error.max() / scale.max()), "mean": float(error.mean() / scale.mean())}


for name, (fn, p) in cases.items():
  (s32, (gp32, gx32)), (s16, (gp16, gx16)) = (run(fn, p, d) for d in (jnp.float32, jnp.bfloat16))
  print(json.dumps({
    "neuron": name,
    "spike_rate_f32": float(s32.mean()),
    "spike_mismatch_frac": float(jnp.mean(s32 != s16)),
    "grad_x_rel_dev": deviation(gx32, gx16),
    "grad_params_rel_dev": [deviation(*g) for g in zip(*map(jax.tree.leaves, (gp32, gp16)))],
  }))
images = jax.random.normal(jax.random.key(3), (8, 32, 32, 3))
forward = nnx.jit(lambda model, x: model(x).mean(0))
logits = {
  d: forward(models.create("resnet19", num_classes=10, timesteps=4, in_channels=3, width=32,
                           dtype=d, rngs=nnx.Rngs(0)), images)
  for d in (jnp.float32, jnp.bfloat16)
}
a, b = logits[jnp.float32], logits[jnp.bfloat16]
print(json.dumps({
  "model": "resnet19", "width": 32, "T": 4, "logits_rel_dev": deviation(a, b),
  "argmax_agree_frac": float(jnp.mean(a.argmax(-1) == b.argmax(-1))),
}))
EOF

stage neuron_layer 75 python -m bench.neuron_layer --device gpu > "$OUT/neuron_layer.jsonl"
if python -c "import torch, spikingjelly" 2>/dev/null; then
  stage neuron_layer_peers 50 python -m bench.neuron_layer --device gpu --repeats 3 \
    --peers spikingjelly > "$OUT/neuron_layer_peers.jsonl"
fi

for remat in off on; do
  stage "model_step_remat_$remat" 75 python -m bench.model_step --timesteps 4 --batch 64 \
    --repeats 5 --remat "$remat" --peak-memory > "$OUT/model_step_remat_$remat.jsonl"
done
# The memory table of bench/README.md on the GPU: kept bytes per neuron-step, XLA's plan
# and the device's measured peak, one process per setting (the peak is a high-water mark).
stage model_step_memory 120 python -m bench.model_step --timesteps 2 6 16 --batch 32 64 \
  --repeats 0 --remat off --peak-memory --peak-rss > "$OUT/model_step_memory.jsonl"

status=0
summary="{"
for name in "${!RC[@]}"; do
  summary+="\"$name\": ${RC[$name]}, "
  [ "${RC[$name]}" -eq 0 ] || status=1
done
echo "${summary%, }}" > "$OUT/summary.json"
cat "$OUT/summary.json"
exit $status
