"""Benchmark 2: the Open Neuromorphic workload, Linear(n, n) + LIF, forward + backward.

Batch 16, T = 100, n in {512, 4096}; gradients w.r.t. the weights. glif-jax folds T
into the batch for the Linear layer and scans only the neuron. Compared in the same
run with the matmuls alone (glif-jax's Linear, forward + backward) and, when
installed (the ``bench`` extra), snnTorch, SpikingJelly and Spyx, each written as
its documentation shows.

  python -m bench.on_workload [--sizes 512 4096] [--timesteps 100]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import emit, machine, median_seconds
from glif_jax import neurons

BATCH = 16


def glif_jax_case(x, w, b, cotangent):
  """Linear (T folded into batch) + LIF scan: ``(spikes, grads of <spikes, cotangent>)``."""
  t, batch, n = x.shape

  @jax.jit
  def step(w, b, x, cotangent):
    def spikes(w, b):
      current = (x.reshape(t * batch, n) @ w + b).reshape(t, batch, -1)
      return neurons.lif(current, constants=neurons.LIFConstants(tau=2.0))[0]

    out, vjp = jax.vjp(spikes, w, b)
    return out, vjp(cotangent)

  return lambda: step(w, b, x, cotangent)


def matmul_only_case(x, w, b, cotangent):
  """The same Linear layer forward + backward, no neuron: the floor of the workload.

  Returns the forward output too: otherwise XLA drops the forward matmul, which the
  gradient of a linear map does not need, and the floor would be one matmul, not two.
  """
  t, batch, n = x.shape

  @jax.jit
  def step(w, b, x, cotangent):
    out, vjp = jax.vjp(lambda w, b: x.reshape(t * batch, n) @ w + b, w, b)
    return out, vjp(cotangent.reshape(t * batch, -1))

  return lambda: step(w, b, x, cotangent)


def spyx_case(x, n, cotangent):
  try:
    import spyx
    from flax import nnx
  except ImportError:
    return None
  rngs = nnx.Rngs(0)
  model = spyx.nn.Sequential(nnx.Linear(n, n, rngs=rngs), spyx.nn.LIF((n,), beta=0.5, rngs=rngs))
  graphdef, params = nnx.split(model, nnx.Param)

  @jax.jit
  def step(params, x, cotangent):
    def loss(params):
      m = nnx.merge(graphdef, params, copy=True)
      out, _ = spyx.nn.run(m, x)
      return jnp.sum(out * cotangent)

    return jax.grad(loss)(params)

  return lambda: step(params, x, cotangent)


def torch_cases(x_np, cotangent_np):
  """snnTorch and SpikingJelly closures, or {} when PyTorch is absent."""
  try:
    import torch
  except ImportError:
    return {}
  t, _, n = x_np.shape
  x = torch.from_numpy(x_np)
  cotangent = torch.from_numpy(cotangent_np)
  cases = {}
  try:
    import snntorch

    fc = torch.nn.Linear(n, n)
    lif = snntorch.Leaky(beta=0.5)

    def snntorch_step():
      fc.zero_grad()
      mem = lif.init_leaky()
      out = []
      for step in range(t):
        spk, mem = lif(fc(x[step]), mem)
        out.append(spk)
      (torch.stack(out) * cotangent).sum().backward()

    cases["snntorch"] = snntorch_step
  except ImportError:
    pass
  try:
    from spikingjelly.activation_based import functional, layer, neuron

    net = torch.nn.Sequential(
      layer.Linear(n, n, step_mode="m"), neuron.LIFNode(tau=2.0, step_mode="m")
    )

    def spikingjelly_step():
      functional.reset_net(net)
      net.zero_grad()
      (net(x) * cotangent).sum().backward()

    cases["spikingjelly"] = spikingjelly_step
  except ImportError:
    pass
  return cases


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[512, 4096])
  parser.add_argument("--timesteps", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  emit({"bench": "on_workload", "batch": BATCH, "timesteps": args.timesteps, **machine()})
  for n in args.sizes:
    rng = np.random.default_rng(n)
    x_np = (rng.random((args.timesteps, BATCH, n)) < 0.2).astype(np.float32)
    ct_np = rng.standard_normal((args.timesteps, BATCH, n)).astype(np.float32)
    w_np = (rng.standard_normal((n, n)) / np.sqrt(n) * 4).astype(np.float32)
    x, cotangent, w, b = jnp.asarray(x_np), jnp.asarray(ct_np), jnp.asarray(w_np), jnp.zeros(n)
    record = {"n": n}
    for name, fn in [
      ("glif_jax", glif_jax_case(x, w, b, cotangent)),
      ("matmul_only", matmul_only_case(x, w, b, cotangent)),
      ("spyx", spyx_case(x, n, cotangent)),
      *torch_cases(x_np, ct_np).items(),
    ]:
      if fn is not None:
        record[f"{name}_ms"] = median_seconds(fn, repeats=args.repeats) * 1e3
    ours = record["glif_jax_ms"]
    record["x_matmul_only"] = ours / record["matmul_only_ms"]
    for peer in ("snntorch", "spikingjelly", "spyx"):
      if f"{peer}_ms" in record:
        record[f"speedup_vs_{peer}"] = record[f"{peer}_ms"] / ours
    emit(record)


if __name__ == "__main__":
  main()
