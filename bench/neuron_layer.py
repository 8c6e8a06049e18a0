"""Benchmark 1: one neuron layer, forward + backward, against XLA's pass bound and PyTorch peers.

Shape [T=6, B=16, 32, 32, 128] (time-major, channel-last). Gradients w.r.t. the input
and every neuron parameter. Prints JSON lines.

  python -m bench.neuron_layer                       # glif-jax, XLA:CPU
  python -m bench.neuron_layer --device gpu          # the same on a GPU
  python -m bench.neuron_layer --rounds 3 --peers spikingjelly authors \
      --authors-layers PATH/TO/Gated-LIF/layers.py   # with the PyTorch peers

Each round times glif-jax, a plain `jax.lax.scan` GLIF, glif-jax's GLIF update
differentiated by autodiff (the ablation of its lean backward pass), glif-jax's GLIF with
the input's gradient alone (the ablation of the parameters' gradient) and XLA's per-pass
bound in this process, interleaved (one run of each per repeat, so a change of load reaches them
alike), and each PyTorch peer in a process of its own (JAX's and PyTorch's thread
pools in one process slow each other down); the last line gives every ratio's
median, min and max over the rounds. Peers: SpikingJelly 2.0's ``GatedLIFNode``,
``KLIFNode`` and ``ParametricLIFNode`` (``pip install spikingjelly``) and the GLIF
authors' ``LIFSpike_CW`` (their ``layers.py``, MIT licence, read from
``--authors-layers``).

glibc serves XLA:CPU's large output buffers with fresh mmap'd pages, one page fault per
4 KiB on first touch; with transparent huge pages for malloc (glibc >= 2.35,
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``) the same elementwise pass runs several times
faster, which ``xla_elementwise_GBps`` shows.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import subprocess
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import copy_bandwidth, emit, interleaved_median_seconds, machine, median_seconds
from glif_jax import neurons, surrogates

# Arrays that must cross memory at least once in forward + backward: x and spikes
# (forward), the spikes' cotangent, x again (or a saved membrane) and dx (backward).
ARRAYS_MOVED = 5


def plain_scan_glif(p: neurons.GLIFParams, x: jax.Array) -> jax.Array:
  """GLIF as a user would first write it: the paper's update in a `jax.lax.scan`, autodiff."""
  alpha, beta, gamma, tau, v_th, leak, v_reset = map(jax.nn.sigmoid, p[:7])
  spike = surrogates.rectangle()

  def step(state, inputs):
    u, o = state
    x_t, conduct_t = inputs
    i_t = x_t * (1 - beta * (1 - conduct_t))
    u = (1 - alpha * (1 - tau)) * u * (1 - gamma * o) - (1 - alpha) * leak + i_t
    u = u - (1 - gamma) * v_reset * o
    o = spike(u - v_th)
    return (u, o), o

  zeros = jnp.zeros(x.shape[1:], x.dtype)
  return jax.lax.scan(step, (zeros, zeros), (x, jax.nn.sigmoid(p.conduct)))[1]


def autodiff_glif(p: neurons.GLIFParams, x: jax.Array) -> jax.Array:
  """glif-jax's GLIF update (`neurons.glif_step`) in a fully unrolled scan, autodiff backward.

  The ablation of `neurons.run`'s lean backward pass: the same step, what autodiff keeps.
  """

  def step(state, inputs):
    spike, state = neurons.glif_step(p, state, inputs)
    return state, spike

  state = neurons.GLIFState.zeros(x.shape[1:], x.dtype)
  return jax.lax.scan(step, state, (x, p.conduct), unroll=True)[1]


def jax_cases(shape, key, device) -> dict[str, tuple[Callable, tuple]]:
  """name -> (jitted loss-gradient function, its arguments on ``device``)."""
  t, *_, c = shape
  x = jax.random.uniform(key, shape, maxval=1.5)
  cotangent = jax.random.normal(jax.random.fold_in(key, 1), shape)

  def grads(run):
    def fn(p, x, cotangent):  # arrays as arguments: closed-over ones would be constant-folded
      _, vjp = jax.vjp(run, p, x)
      return vjp(cotangent)

    return jax.jit(fn)

  def input_grad(run):
    def fn(x, p, cotangent):
      _, vjp = jax.vjp(functools.partial(run, p=p), x)
      return vjp(cotangent)

    return jax.jit(fn)

  glif_p = neurons.glif_params(c, t, key=jax.random.fold_in(key, 2))
  cases = {
    "glif": (grads(lambda p, x: neurons.glif(p, x)[0]), (glif_p, x, cotangent)),
    "glif_plain_scan": (grads(plain_scan_glif), (glif_p, x, cotangent)),
    "glif_autodiff": (grads(autodiff_glif), (glif_p, x, cotangent)),
    # The input's gradient alone: XLA drops the parameters' (the per-step sums over the
    # batch), so the difference to "glif" is what the parameters' gradient costs.
    "glif_input_grad": (input_grad(lambda x, p: neurons.glif(p, x)[0]), (x, glif_p, cotangent)),
    "klif": (grads(lambda p, x: neurons.klif(p, x)[0]), (neurons.klif_params(), x, cotangent)),
    "lif": (grads(lambda p, x: neurons.plif(p, x)[0]), (neurons.plif_params(), x, cotangent)),
  }
  return {k: (fn, jax.device_put(args, device)) for k, (fn, args) in cases.items()}


def torch_cases(peer: str, shape, authors_layers: str | None) -> dict[str, Callable[[], None]]:
  """name -> zero-argument callables running a PyTorch peer forward + backward."""
  import torch

  torch.manual_seed(0)
  t, b, h, w, c = shape
  x = (torch.rand(t, b, c, h, w) * 1.5).requires_grad_()  # the peers are channel-first
  cotangent = torch.randn(t, b, c, h, w)
  reset: Callable = lambda node: None
  if peer == "spikingjelly":
    from spikingjelly.activation_based import functional, neuron

    reset = functional.reset_net
    nodes = {
      "glif": neuron.GatedLIFNode(T=t, inplane=c),
      "klif": neuron.KLIFNode(step_mode="m"),
      "lif": neuron.ParametricLIFNode(step_mode="m"),
    }
  else:
    if authors_layers is None:
      raise SystemExit("--peers authors needs --authors-layers PATH (their layers.py)")
    spec = importlib.util.spec_from_file_location("gated_lif_layers", authors_layers)
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    options = {"soft_mode": True, "static_gate": False, "static_param": False, "time_wise": False}
    gates, values = [0.6, 0.8, 0.6], [0.25, 0.5, 0.5 / 8, 0.5]  # their defaults, our leak
    nodes = {"glif": layers.LIFSpike_CW(c, t=t, gate=gates, param=values, **options)}

  def run(node):
    def fn():
      reset(node)
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
  run = lambda p, x: neurons.glif(
    p, x, constants=neurons.GLIFConstants(surrogate=surrogates.sigmoid(4.0))
  )[0].sum()
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


def time_peer(peer: str, args) -> dict[str, float]:
  """Milliseconds per neuron of ``peer``, timed in a fresh Python process."""
  command = [sys.executable, "-m", "bench.neuron_layer", "--peer-only", peer]
  command += ["--shape", *map(str, args.shape), "--repeats", str(args.repeats)]
  if args.authors_layers:
    command += ["--authors-layers", args.authors_layers]
  out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def one_round(args, device) -> dict[str, float]:
  """``{case: ms}`` and ratios of one round: the bound and glif-jax here, each peer apart."""
  x = jax.device_put(jnp.ones(args.shape, jnp.float32), device)
  axpy = jax.jit(lambda x: 1.5 * x + 0.5)
  fns = {"xla_pass": functools.partial(axpy, x)}
  for name, (fn, fn_args) in jax_cases(tuple(args.shape), jax.random.key(0), device).items():
    fns[name] = functools.partial(fn, *fn_args)
  ms = {k: v * 1e3 for k, v in interleaved_median_seconds(fns, repeats=args.repeats).items()}
  # XLA:CPU runs an elementwise fusion such as a·x + b on one thread, so its rate (read x,
  # write y: 2 arrays), not the copy bandwidth, is what an XLA neuron loop can stream at.
  pass_ms = ms.pop("xla_pass")
  bound_ms = pass_ms * ARRAYS_MOVED / 2
  for peer in args.peers:
    ms.update({f"{peer}_{k}": v for k, v in time_peer(peer, args).items()})
  ratios = {f"{name}_x_xla_pass_bound": ms[name] / bound_ms for name in ("glif", "klif", "lif")}
  ratios["glif_x_plain_scan"] = ms["glif"] / ms["glif_plain_scan"]
  ratios["glif_input_grad_x_glif"] = ms["glif_input_grad"] / ms["glif"]
  ratios["glif_autodiff_x_xla_pass_bound"] = ms["glif_autodiff"] / bound_ms
  ratios["glif_autodiff_x_plain_scan"] = ms["glif_autodiff"] / ms["glif_plain_scan"]
  for name in [k for k in ms if k.startswith(tuple(args.peers))]:
    ratios[f"speedup_vs_{name}"] = ms[name] / ms[name.split("_", 1)[1]]
  gbps = 2 * x.nbytes / pass_ms / 1e6
  return {"xla_elementwise_GBps": gbps, "xla_pass_bound_ms": bound_ms, **ms, **ratios}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shape", type=int, nargs=5, default=[6, 16, 32, 32, 128])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
  parser.add_argument("--peers", nargs="*", default=[], choices=["spikingjelly", "authors"])
  parser.add_argument("--authors-layers", help="the GLIF authors' layers.py (LIFSpike_CW)")
  parser.add_argument("--peer-only", choices=["spikingjelly", "authors"], help=argparse.SUPPRESS)
  args = parser.parse_args()
  shape = tuple(args.shape)
  if args.peer_only:  # a child process of `time_peer`
    cases = torch_cases(args.peer_only, shape, args.authors_layers)
    emit({k: median_seconds(fn, repeats=args.repeats) * 1e3 for k, fn in cases.items()})
    return
  try:
    device = jax.devices(args.device)[0]
  except RuntimeError as e:
    raise SystemExit(f"--device {args.device}: no such JAX backend here ({e})") from e
  header = {"bench": "neuron_layer", "shape": shape, "device": str(device)}
  if args.device == "cpu":
    bytes_moved = ARRAYS_MOVED * np.prod(shape) * 4
    header["memory_bound_ms"] = bytes_moved / copy_bandwidth() * 1e3
  emit({**header, **machine()})
  parity = spikingjelly_glif_parity() if "spikingjelly" in args.peers else None
  if parity:
    emit(parity)
  rounds = []
  for i in range(args.rounds):
    rounds.append(one_round(args, device))
    emit({"round": i, **rounds[-1]})
  spread = {
    k: {
      f: round(g([r[k] for r in rounds]), 3)
      for f, g in (("median", statistics.median), ("min", min), ("max", max))
    }
    for k in rounds[0]
  }
  emit({"summary_over_rounds": args.rounds, **spread})


if __name__ == "__main__":
  main()
