"""Benchmarks 3 and 4: one ResNet-19 train step (CIFAR shape), throughput, memory, compile time.

For each T, each batch and each ``remat`` setting: the compile time of the jitted train
step, XLA's memory plan of it (arguments + outputs + temporaries, and the temporaries
alone), the bytes the forward pass keeps for the backward pass (the residuals of
`jax.vjp`, from `jax.eval_shape`), those bytes per neuron-step (one neuron at one time
step of one sample) and the median step time as images/s. SGD + momentum as in the GLIF
recipe.

  python -m bench.model_step [--timesteps 2 4 6 8] [--batch 8 32] [--dtype bfloat16]
                             [--remat off] [--repeats 3] [--peak-memory] [--peak-rss]

``--peak-memory`` adds the device's measured peak (``peak_bytes_in_use`` of
``jax.devices()[0].memory_stats()``, GPU and TPU only). ``--peak-rss`` runs each setting
in a process of its own and adds that process's peak resident memory (``ru_maxrss``: the
host's memory, which on a CPU is the device's), compile and one step included.
``--repeats 0`` skips the timing (memory only).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bench.common import emit, machine, median_seconds
from glif_jax import models
from glif_jax.analysis.network import neuron_spikes
from glif_jax.training import (
  create_train_state,
  make_optimizer,
  mean_logits_cross_entropy,
  train_step,
)

REMATS = {"both": (False, True), "off": (False,), "on": (True,)}


def residual_bytes(model: nnx.Module, images: jax.Array) -> int:
  """Bytes the forward pass stores for the backward pass (parameters included)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  forward = lambda params: nnx.merge(graphdef, params, rest, copy=True)(images)
  residuals = jax.eval_shape(lambda params: jax.vjp(forward, params)[1], params)
  return int(sum(np.prod(r.shape) * r.dtype.itemsize for r in jax.tree.leaves(residuals)))


def neurons_per_sample(model: nnx.Module, images: jax.Array) -> int:
  """Spiking neurons of one sample at one time step: every neuron layer's spikes
  ``[T, B, ...]`` counted per ``T·B``."""
  spikes = jax.eval_shape(lambda x: neuron_spikes(model, x), images)
  return sum(s.size // (s.shape[0] * s.shape[1]) for s in jax.tree.leaves(spikes))


def remat_probe(layers: int = 16, rows: int = 4096, features: int = 512) -> dict:
  """XLA's planned temporary bytes of the gradient of a tanh MLP, with and without remat.

  Shows whether this backend's compiler turns `jax.checkpoint` into lower peak memory:
  without remat the backward keeps every layer's activation, with remat only the inputs.
  """

  def loss(ws, x, remat):
    layer = lambda w, x: jnp.tanh(x @ w)
    layer = jax.checkpoint(layer) if remat else layer
    for w in ws:
      x = layer(w, x)
    return jnp.sum(x)

  ws = [jnp.full((features, features), 0.01) for _ in range(layers)]
  x = jnp.ones((rows, features))
  temp = {
    f"temp_bytes_remat_{remat}".lower(): jax.jit(jax.grad(functools.partial(loss, remat=remat)))
    .lower(ws, x)
    .compile()
    .memory_analysis()
    .temp_size_in_bytes
    for remat in (False, True)
  }
  return {"probe": "xla_remat", "layers": layers, "activation_bytes": rows * features * 4, **temp}


def device_peak_bytes() -> int | None:
  """The first device's peak bytes in use so far (None where not reported, as on CPU)."""
  stats = jax.devices()[0].memory_stats()
  return None if stats is None else stats.get("peak_bytes_in_use")


def build_step(timesteps: int, batch: int, remat: bool, dtype, model_name: str, width: int | None):
  """The jitted train step, its state, a batch of CIFAR-shaped random data, the residual
  bytes and the neurons per sample."""
  model = models.create(
    model_name,
    num_classes=10,
    timesteps=timesteps,
    in_channels=3,
    width=width,
    remat=remat,
    dtype=dtype,
    rngs=nnx.Rngs(0),
  )
  tx = make_optimizer(
    optimizer="sgd",
    learning_rate=optax.constant_schedule(0.1),
    momentum=0.9,
    weight_decay=4e-5,
    neuron_lr_scale=0.1,
    grad_clip_norm=None,
  )
  rng = np.random.default_rng(0)
  data = {
    "image": jnp.asarray(rng.standard_normal((batch, 32, 32, 3)), jnp.float32),
    "label": jnp.asarray(rng.integers(0, 10, batch), jnp.int32),
  }
  model.train()
  residuals = residual_bytes(model, data["image"])
  neurons = neurons_per_sample(model, data["image"])
  graphdefs, state = create_train_state(model, tx)
  step = jax.jit(
    functools.partial(
      train_step, graphdef=graphdefs.train, tx=tx, loss_fn=mean_logits_cross_entropy
    ),
    donate_argnums=0,
  )
  return step, state, data, residuals, neurons


def median_step_seconds(compiled, state, data, *, repeats: int) -> float:
  """Median seconds of ``compiled(state, data)``, each run on the last run's (donated) state."""
  holder = {"state": state}

  def run():
    holder["state"], metrics = compiled(holder["state"], data)
    return metrics

  return median_seconds(run, repeats=repeats)


def measure(args: argparse.Namespace, timesteps: int, batch: int, remat: bool) -> dict:
  """One setting's record: compile time, memory plan, kept bytes, step time."""
  step, state, data, residuals, neurons = build_step(
    timesteps, batch, remat, jnp.dtype(args.dtype), args.model, args.width
  )
  start = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  peak = (
    memory.argument_size_in_bytes
    + memory.output_size_in_bytes
    - memory.alias_size_in_bytes
    + memory.temp_size_in_bytes
  )  # donated: outputs alias inputs
  record = {
    "T": timesteps,
    "batch": batch,
    "remat": remat,
    "compile_s": compile_s,
    "residual_bytes": residuals,
    "residual_bytes_per_neuron_step": residuals / (neurons * timesteps * batch),
    "neurons_per_sample": neurons,
    "peak_bytes": int(peak),
    "temp_bytes": int(memory.temp_size_in_bytes),
  }
  if args.repeats:
    seconds = median_step_seconds(compiled, state, data, repeats=args.repeats)
    record.update(step_ms=seconds * 1e3, images_per_s=batch / seconds)
  else:
    jax.block_until_ready(compiled(state, data))  # one step, for the peak RSS
  if args.peak_memory:
    record["device_peak_bytes"] = device_peak_bytes()
  return record


def in_own_process(argv: list[str], timesteps: int, batch: int, remat: str) -> dict:
  """`measure` in a process of its own, with its peak resident memory."""
  setting = ["--timesteps", str(timesteps), "--batch", str(batch), "--remat", remat]
  out = subprocess.run(
    [sys.executable, "-m", "bench.model_step", *argv, *setting, "--one-setting"],
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  return json.loads(out.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--timesteps", type=int, nargs="+", default=[2, 4, 6, 8])
  parser.add_argument("--batch", type=int, nargs="+", default=[8])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--model", default="resnet19")
  parser.add_argument("--width", type=int, default=None)
  parser.add_argument("--remat", choices=list(REMATS), default="both")
  parser.add_argument(
    "--peak-memory", action="store_true", help="add the device's measured peak (GPU/TPU)"
  )
  parser.add_argument(
    "--peak-rss", action="store_true", help="one process per setting, with its peak RSS"
  )
  parser.add_argument("--one-setting", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.one_setting:  # a child of --peak-rss: one record, with this process's peak
    record = measure(args, args.timesteps[0], args.batch[0], REMATS[args.remat][0])
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({**record, "peak_rss_bytes": peak_rss}))
    return
  emit({"bench": "model_step", "model": args.model, "dtype": args.dtype, **machine()})
  emit(remat_probe())
  passed_on = ["--repeats", str(args.repeats), "--dtype", args.dtype, "--model", args.model]
  passed_on += [] if args.width is None else ["--width", str(args.width)]
  passed_on += ["--peak-memory"] if args.peak_memory else []
  for timesteps in args.timesteps:
    for batch in args.batch:
      for remat in REMATS[args.remat]:
        if args.peak_rss:
          emit(in_own_process(passed_on, timesteps, batch, "on" if remat else "off"))
        else:
          emit(measure(args, timesteps, batch, remat))


if __name__ == "__main__":
  main()
