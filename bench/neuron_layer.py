"""Benchmark 1: one neuron layer, forward + backward, against SpikingJelly and the memory bound.

Shape [T=6, B=16, 32, 32, 128] (time-major, channel-last). Gradients w.r.t. the input
and every neuron parameter. Prints JSON lines; ratios compare runs in this process.

  python -m bench.neuron_layer            # glif-jax only
  pip install -e ".[bench]" && python -m bench.neuron_layer   # with the PyTorch peers
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python -m bench.neuron_layer   # huge pages

glibc serves XLA:CPU's large output buffers with fresh mmap'd pages, one page fault per
4 KiB on first touch; with transparent huge pages for malloc (glibc >= 2.35) the same
elementwise pass runs several times faster, which ``xla_elementwise_GBps`` shows.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import copy_bandwidth, emit, machine, median_seconds
from glif_jax import neurons, surrogates

# Arrays that must cross memory at least once in forward + backward: x and spikes
# (forward), the spikes' cotangent, x again (or a saved membrane) and dx (backward).
ARRAYS_MOVED = 5


def xla_elementwise_bandwidth(shape) -> float:
  """Bytes/s of one jitted elementwise pass ``a·x + b`` (read x, write y) over ``shape``.

  XLA:CPU runs such a fusion on one thread, so this, not the copy bandwidth, is the rate
  at which any XLA neuron loop can stream its arrays.
  """
  x = jnp.ones(shape, jnp.float32)
  axpy = jax.jit(lambda x: 1.5 * x + 0.5)
  return 2 * x.nbytes / median_seconds(lambda: axpy(x))


def jax_cases(shape, key):
  """name -> (loss-gradient function, arguments) for the glif-jax neurons."""
  t, *_, c = shape
  x = jax.random.uniform(key, shape, maxval=1.5)
  cotangent = jax.random.normal(jax.random.fold_in(key, 1), shape)

  def grads(run):
    def fn(p, x, cotangent):  # arrays as arguments: closed-over ones would be constant-folded
      _, vjp = jax.vjp(run, p, x)
      return vjp(cotangent)

    return jax.jit(fn)

  glif_p = neurons.glif_params(c, t, key=jax.random.fold_in(key, 2))
  return {
    "glif": (grads(lambda p, x: neurons.glif(p, x)[0]), (glif_p, x, cotangent)),
    "klif": (grads(lambda p, x: neurons.klif(p, x)[0]), (neurons.klif_params(), x, cotangent)),
    "lif": (grads(lambda p, x: neurons.plif(p, x)[0]), (neurons.plif_params(), x, cotangent)),
  }


def torch_cases(shape, seed):
  """name -> zero-argument callables running SpikingJelly forward + backward, or {}."""
  try:
    import torch
    from spikingjelly.activation_based import functional, neuron
  except ImportError:
    return {}
  torch.manual_seed(seed)
  t, b, h, w, c = shape
  x = (torch.rand(t, b, c, h, w) * 1.5).requires_grad_()  # SpikingJelly is channel-first
  cotangent = torch.randn(t, b, c, h, w)
  nodes = {
    "glif": neuron.GatedLIFNode(T=t, inplane=c),
    "klif": neuron.KLIFNode(step_mode="m"),
    "lif": neuron.ParametricLIFNode(step_mode="m"),
  }

  def run(node):
    def fn():
      functional.reset_net(node)
      x.grad = None
      node.zero_grad()
      node(x).backward(cotangent)

    return fn

  return {name: run(node) for name, node in nodes.items()}


def spikingjelly_glif_parity(seed: int = 0) -> dict | None:
  """Spikes and gradients of glif-jax vs SpikingJelly's GatedLIFNode on the same logits."""
  try:
    import torch
    from spikingjelly.activation_based import neuron, surrogate
  except ImportError:
    return None
  t, b, h, w, c = 4, 2, 3, 3, 5
  node = neuron.GatedLIFNode(T=t, inplane=c, surrogate_function=surrogate.Sigmoid(alpha=4.0))
  rng = np.random.default_rng(seed)
  names = ["alpha", "beta", "gamma", "tau", "v_threshold", "linear_decay", "v_subreset", "conduct"]
  with torch.no_grad():
    for name in names:
      getattr(node, name).copy_(torch.from_numpy(rng.normal(size=getattr(node, name).shape)))
  x_np = rng.uniform(0, 1.5, (t, b, h, w, c)).astype(np.float32)
  x_torch = torch.from_numpy(x_np.transpose(0, 1, 4, 2, 3).copy()).requires_grad_()
  spikes_torch = node(x_torch)
  spikes_torch.sum().backward()
  p = neurons.GLIFParams(*(jnp.asarray(getattr(node, n).detach().numpy()) for n in names))
  run = lambda p, x: neurons.glif(p, x, surrogate=surrogates.sigmoid(4.0))[0].sum()
  spikes = neurons.glif(p, jnp.asarray(x_np))[0]
  grad_p, grad_x = jax.grad(run, argnums=(0, 1))(p, jnp.asarray(x_np))
  param_err = max(
    float(np.max(np.abs(np.asarray(g) - getattr(node, n).grad.numpy())))
    for g, n in zip(grad_p, names)
  )
  return {
    "check": "spikingjelly_glif_parity",
    "spikes_equal": bool(
      np.array_equal(np.asarray(spikes), spikes_torch.detach().numpy().transpose(0, 1, 3, 4, 2))
    ),
    "max_abs_err_grad_x": float(
      np.max(np.abs(np.asarray(grad_x) - x_torch.grad.numpy().transpose(0, 1, 3, 4, 2)))
    ),
    "max_abs_err_grad_params": param_err,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shape", type=int, nargs=5, default=[6, 16, 32, 32, 128])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  shape = tuple(args.shape)
  bandwidth = copy_bandwidth()
  xla_bandwidth = xla_elementwise_bandwidth(shape)
  bound_ms = ARRAYS_MOVED * np.prod(shape) * 4 / bandwidth * 1e3
  xla_bound_ms = ARRAYS_MOVED * np.prod(shape) * 4 / xla_bandwidth * 1e3
  emit(
    {
      "bench": "neuron_layer",
      "shape": shape,
      "copy_bandwidth_GBps": bandwidth / 1e9,
      "memory_bound_ms": bound_ms,
      "xla_elementwise_GBps": xla_bandwidth / 1e9,
      "xla_pass_bound_ms": xla_bound_ms,
      **machine(),
    }
  )
  parity = spikingjelly_glif_parity()
  if parity:
    emit(parity)
  peers = torch_cases(shape, seed=0)
  for name, (fn, fn_args) in jax_cases(shape, jax.random.key(0)).items():
    ms = median_seconds(lambda: fn(*fn_args), repeats=args.repeats) * 1e3
    record = {
      "neuron": name,
      "glif_jax_ms": ms,
      "x_memory_bound": ms / bound_ms,
      "x_xla_pass_bound": ms / xla_bound_ms,
    }
    if name in peers:
      peer_ms = median_seconds(peers[name], repeats=args.repeats) * 1e3
      record.update(spikingjelly_ms=peer_ms, speedup_vs_spikingjelly=peer_ms / ms)
    emit(record)


if __name__ == "__main__":
  main()
