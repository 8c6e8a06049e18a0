r"""Export of feed-forward spiking networks to NIR, and a JAX interpreter of what it emits.

NIR (the Neuromorphic Intermediate Representation, ``pip install nir``) describes neurons
as continuous-time ODEs. Its LIF node is

    τ·dv/dt = (v_leak − v) + r·I,     z = 1[v > v_threshold],     v ← v_reset where z = 1,

and discrete-time simulators (Norse, snnTorch, Spyx, this module's `run_nir`) step it by
forward Euler with a time step dt, firing and resetting within the step::

    v_t = v_{t−1} + (dt/τ)·(v_leak − v_{t−1} + r·I_t);   z_t = 1[v_t > v_threshold];
    v_t ← v_reset where z_t = 1.

The membrane starts at 0 (as Norse, snnTorch and Spyx initialise it).

**LIF / PLIF** (SpikingJelly's ``H = V + (X − (V − V_reset))/τ``, hard reset). In the
frame ``v = V − V_reset`` (so that rest, where our neuron starts, is 0)::

    dt/τ_NIR = 1/τ,   r = 1 (decay_input) or τ (decay_input=False),   v_leak = 0,
    v_threshold = V_th − V_reset,   v_reset = 0.

PLIF exports the same with ``1/τ = sigmoid(w)``. One difference is unavoidable: our LIF
fires on ``H ≥ V_th``, NIR on ``v > v_threshold``; they differ only when the membrane
lands exactly on the threshold. Soft reset (``v_reset=None``, ``V ← H − V_th``) has no
NIR primitive: `NotImplementedError`.

**GLIF** is ``u_t = a·u_{t−1}·(1 − h·o_{t−1}) − l + g_t·X_t − s·o_{t−1}`` in the terms
of `glif_jax.neurons.glif_coefficients`: decay ``a = 1 − α(1 − τ)``, hard reset ``h = γ``,
leak ``l = (1 − α)V_L``, soft reset ``s = (1 − γ)V_R``, gain ``g_t = 1 − β(1 − G_t)``
(GLIF_f: ``a = τ, h = 1, l = V_L, s = V_R, g_t = G_t``). It fires on ``u > V_th``, as NIR. It maps exactly onto NIR's LIF when

- ``h = 1`` (γ = 1: the whole decayed membrane is reset), since NIR resets to a
  constant: after a spike ``u_t = −s − l + g·X_t``, which is NIR's step from
  ``v_reset = −s/a``;
- ``a < 1`` (α > 0): NIR's ``dt/τ = 1 − a``; with ``a = 1`` the neuron is an integrator
  with a constant leak current, which NIR's IF lacks;
- ``g_t`` is the same at every step: NIR has no time-varying parameter.

Then ``dt/τ_NIR = 1 − a``, ``r = g/(1 − a)``, ``v_leak = −l/(1 − a)``,
``v_threshold = V_th``, ``v_reset = −s/a``. So GLIF_f with a constant conductance
exports, and GLIF with hard gating when γ = α = 1 and (β = 0 or constant G_t); soft gates
are sigmoids, never exactly 1, and raise `NotImplementedError` naming the condition.

**KLIF** never maps: its membrane ``V = ReLU(k·H)`` is rectified and scaled, which no
NIR neuron does (`NotImplementedError`).

Layouts: our activations are channel-last ``(H, W, C)``; NIR's are channel-first
``(C, H, W)``. Convolution kernels are transposed HWIO → OIHW, and a dense layer after a
convolution (which flattens its input) gets its weight columns permuted from (H, W, C)
to (C, H, W) order behind a NIR ``Flatten``.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import nir
import numpy as np
from flax import nnx

from glif_jax import neurons
from glif_jax import nn as snn

Layer = nnx.Module
# NIR LIF coefficients by name (see `_neuron_coefficients`): per-channel arrays or scalars.
_Coefficients = dict[str, np.ndarray | float]
DEFAULT_DT = 1e-3  # 1 ms, Norse's default time step


# --- running a layer list in JAX ------------------------------------------------------


def _unwrap(layer: Layer) -> Layer | Callable[[jax.Array], jax.Array]:
  return layer.layer if isinstance(layer, snn.TimeFolded) else layer


def run_layers(layers: Sequence[Layer], x: jax.Array) -> jax.Array:
  """Runs a feed-forward list of layers on ``x [T, B, ...]`` (the network `to_nir` exports).

  Synaptic layers (`nnx.Linear`, `nnx.Conv`, optionally inside `snn.TimeFolded`) run with
  T folded into the batch; a Linear on a rank-5 activation ``[T, B, H, W, C]`` flattens it
  first. Neuron modules run from rest and pass on their spikes.

  Returns:
    The last layer's output ``[T, B, ...]``.
  """
  for layer in layers:
    layer = _unwrap(layer)
    if isinstance(layer, snn.SpikingNeuron):
      x, _ = layer(x)
    elif isinstance(layer, nnx.Linear):
      x = snn.fold_time(layer, x.reshape(*x.shape[:2], -1))
    elif isinstance(layer, nnx.Conv):
      x = snn.fold_time(layer, x)
    else:
      raise TypeError(
        f"unsupported layer {type(layer).__name__}: expected nnx.Linear, "
        "nnx.Conv or a glif_jax.nn neuron module"
      )
  return x


# --- neurons -> NIR LIF parameters ------------------------------------------------------


def _lif_coefficients(module: snn.LIF | snn.PLIF, inv_tau: Any) -> _Coefficients:
  constants = module.constants
  if constants.v_reset is None:
    raise NotImplementedError(
      f"{type(module).__name__} with soft reset (v_reset=None, V <- H - V_th): NIR's LIF "
      "resets to a constant v_reset and has no subtractive reset"
    )
  inv_tau = np.asarray(inv_tau, np.float64)
  return {
    "rate": inv_tau,
    "r": 1.0 if constants.decay_input else 1.0 / inv_tau,
    "v_leak": 0.0,
    "v_threshold": constants.v_th - constants.v_reset,
    "v_reset": 0.0,
  }


def _glif_coefficients(module: snn.GLIF) -> _Coefficients:
  constants = module.constants
  coefficients = neurons.glif_coefficients(
    module.params, gating=constants.gating, simplified=constants.simplified
  )
  c = {k: np.asarray(a, np.float64) for k, a in coefficients._asdict().items()}
  why = "GLIF maps onto NIR's LIF only with "
  if not np.all(c["hard_reset"] == 1):
    raise NotImplementedError(
      why + "γ = 1 (full hard reset): a partial reset (1 − γ·o)·u or the soft-reset share "
      "(1 − γ)·V_R has no NIR primitive; soft gates are sigmoids, never exactly 1 — "
      f"use gating='hard' (got γ in [{np.min(c['hard_reset']):.3g}, "
      f"{np.max(c['hard_reset']):.3g}])"
    )
  if not np.all(c["decay"] < 1):
    raise NotImplementedError(
      why + "α > 0: with α = 0 the membrane does not decay and leaks a constant V_L per "
      "step, an integrator with a bias that NIR's IF lacks"
    )
  if not np.all(c["gain"] == c["gain"][:1]):
    raise NotImplementedError(
      why + "an input gain 1 − β(1 − G_t) constant over time: NIR has no time-varying "
      "conductance (use β = 0 or a constant G_t)"
    )
  rate = 1 - c["decay"]
  return {
    "rate": rate,
    "r": c["gain"][0] / rate,
    "v_leak": -c["leak"] / rate,
    "v_threshold": c["v_th"],
    "v_reset": -c["soft_reset"] / c["decay"],
  }


def _neuron_coefficients(module: snn.SpikingNeuron) -> _Coefficients:
  """``dt/τ`` (as ``rate``), r, v_leak, v_threshold, v_reset of NIR's LIF, per channel."""
  if isinstance(module, snn.KLIF):
    raise NotImplementedError(
      "KLIF cannot be exported to NIR: its membrane V = ReLU(k·H) is rectified and scaled "
      "by k, which no NIR neuron does"
    )
  if isinstance(module, snn.GLIF):
    return _glif_coefficients(module)
  if isinstance(module, snn.PLIF):
    return _lif_coefficients(module, jax.nn.sigmoid(module.w[...]))
  if isinstance(module, snn.LIF):
    return _lif_coefficients(module, 1.0 / module.constants.tau)
  raise NotImplementedError(f"no NIR export for neuron module {type(module).__name__}")


def _neuron_node(module: snn.SpikingNeuron, shape: tuple[int, ...], dt: float) -> nir.LIF:
  c = _neuron_coefficients(module)

  def full(value) -> np.ndarray:  # per-channel (C,) or scalar -> NIR's (C, ...) layout
    value = np.asarray(value, np.float32)
    value = value.reshape(value.shape + (1,) * (len(shape) - 1)) if value.ndim else value
    return np.broadcast_to(value, shape).astype(np.float32)

  return nir.LIF(
    tau=full(dt / np.asarray(c["rate"])),
    r=full(c["r"]),
    v_leak=full(c["v_leak"]),
    v_threshold=full(c["v_threshold"]),
    v_reset=full(c["v_reset"]),
  )


# --- synaptic layers -> NIR -------------------------------------------------------------


def _pair(value: Any) -> tuple[int, int]:
  return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _conv_padding(conv: nnx.Conv) -> tuple[int, int]:
  pad = conv.padding
  if isinstance(pad, str):
    if pad.upper() == "VALID":
      return (0, 0)
    (kh, kw), (dh, dw) = _pair(conv.kernel_size), _pair(conv.kernel_dilation)
    if pad.upper() == "SAME" and _pair(conv.strides) == (1, 1) and kh % 2 and kw % 2:
      return ((kh - 1) // 2 * dh, (kw - 1) // 2 * dw)
  elif isinstance(pad, int):
    return (pad, pad)
  else:
    sides = [(p, p) if isinstance(p, int) else p for p in pad]
    if all(lo == hi for lo, hi in sides):
      (h, _), (w, _) = sides
      return (h, w)
  raise NotImplementedError(
    f"convolution padding {pad!r} is not symmetric; NIR's Conv2d pads both sides of an axis equally"
  )


def _conv_node(conv: nnx.Conv, shape: tuple[int, ...]) -> tuple[nir.Conv2d, tuple[int, ...]]:
  if len(conv.kernel_size) != 2 or len(shape) != 3:
    raise NotImplementedError(
      f"only 2-D convolutions on (H, W, C) inputs export, got kernel "
      f"{conv.kernel_size} on a per-sample input {shape} (C first)"
    )
  if _pair(conv.input_dilation) != (1, 1):
    raise NotImplementedError("NIR's Conv2d has no input dilation")
  kernel = np.asarray(conv.kernel[...], np.float32).transpose(3, 2, 0, 1)  # HWIO -> OIHW
  bias = (
    np.asarray(conv.bias[...], np.float32)
    if conv.bias is not None
    else np.zeros(kernel.shape[0], np.float32)
  )
  node = nir.Conv2d(
    input_shape=shape[1:],
    weight=kernel,
    stride=_pair(conv.strides),
    padding=_conv_padding(conv),
    dilation=_pair(conv.kernel_dilation),
    groups=conv.feature_group_count,
    bias=bias,
  )
  return node, tuple(int(d) for d in node.output_type["output"])


def _dense_node(linear: nnx.Linear, shape: tuple[int, ...]) -> nir.NIRNode:
  weight = np.asarray(linear.kernel[...], np.float32).T  # (out, in) in our (H, W, C) order
  if len(shape) == 3:  # columns from (H, W, C) to NIR's flattened (C, H, W) order
    c, h, w = shape
    weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
  if linear.bias is not None:
    return nir.Affine(weight=weight, bias=np.asarray(linear.bias[...], np.float32))
  return nir.Linear(weight=weight)


def to_nir(
  layers: Sequence[Layer], input_shape: tuple[int, ...], *, dt: float = DEFAULT_DT
) -> nir.NIRGraph:
  """Exports a feed-forward list of layers (as run by `run_layers`) to a NIR graph.

  Args:
    layers: `nnx.Linear`, 2-D `nnx.Conv` (optionally in `snn.TimeFolded`) and neuron
      modules: `snn.LIF`, `snn.PLIF` (hard reset), `snn.GLIF` in the cases the module
      docstring lists. A Linear after a convolution flattens its input.
    input_shape: one sample's input, ``(F,)`` or channel-last ``(H, W, C)``.
    dt: the time step the discrete network stands for; NIR's time constants are
      ``τ_NIR = dt / (dt/τ)``. Simulate with the same dt.

  Returns:
    A `nir.NIRGraph` with nodes ``"input"``, ``"0"``, ``"1"``, ..., ``"output"`` in a chain
    (plus ``"<i>.flatten"`` before a dense layer that follows a convolution), shapes
    channel-first.

  Raises:
    NotImplementedError: a layer or neuron setting with no exact NIR counterpart.
    ValueError: ``layers`` is empty, or ``dt`` is not a finite number > 0.
  """
  _check_dt(dt)
  if not layers:
    raise ValueError("layers must hold at least one layer to export, got an empty sequence")
  shape = tuple(input_shape)
  if len(shape) == 3:
    shape = (shape[2], shape[0], shape[1])
  nodes: dict[str, nir.NIRNode] = {"input": nir.Input({"input": np.array(shape)})}
  chain = ["input"]
  for i, layer in enumerate(layers):
    layer = _unwrap(layer)
    if isinstance(layer, snn.SpikingNeuron):
      nodes[str(i)] = _neuron_node(layer, shape, dt)
    elif isinstance(layer, nnx.Conv):
      nodes[str(i)], shape = _conv_node(layer, shape)
    elif isinstance(layer, nnx.Linear):
      if len(shape) > 1:
        nodes[f"{i}.flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
        chain.append(f"{i}.flatten")
      nodes[str(i)] = _dense_node(layer, shape)
      shape = (layer.out_features,)
    else:
      raise NotImplementedError(f"no NIR export for layer {type(layer).__name__}")
    chain.append(str(i))
  nodes["output"] = nir.Output({"output": np.array(shape)})
  chain.append("output")
  return nir.NIRGraph(
    nodes=nodes, edges=list(itertools.pairwise(chain)), metadata={"dt": dt, "source": "glif_jax"}
  )


# --- a JAX interpreter of the NIR nodes emitted above --------------------------------


def _run_lif(node: nir.LIF, x: jax.Array, dt: float) -> jax.Array:
  rate, r, v_leak, v_th, v_reset = (
    jnp.asarray(a, jnp.float32)
    for a in (dt / node.tau, node.r, node.v_leak, node.v_threshold, node.v_reset)
  )

  def step(v, i_t):
    v = v + rate * (v_leak - v + r * i_t)
    z = (v > v_th).astype(v.dtype)
    return jnp.where(z > 0, v_reset, v), z

  _, spikes = jax.lax.scan(step, jnp.zeros_like(x[0]), x)
  return spikes


def _nir_pair(value: Any) -> tuple[int, int]:
  """A Conv2d stride, padding or dilation: a pair (a tuple, or an array once read) or an int."""
  a, b = np.broadcast_to(value, (2,)).tolist()
  return int(a), int(b)


def _run_conv(node: nir.Conv2d, x: jax.Array) -> jax.Array:
  def conv(a):
    y = jax.lax.conv_general_dilated(
      a,
      jnp.asarray(node.weight),
      window_strides=_nir_pair(node.stride),
      padding=[(p, p) for p in _nir_pair(node.padding)],
      rhs_dilation=_nir_pair(node.dilation),
      dimension_numbers=("NCHW", "OIHW", "NCHW"),
      feature_group_count=int(node.groups),
    )
    return y + jnp.asarray(node.bias)[:, None, None]

  return snn.fold_time(conv, x)


def _run_node(node: nir.NIRNode, x: jax.Array, dt: float) -> jax.Array:
  if isinstance(node, (nir.Input, nir.Output)):
    return x
  if isinstance(node, nir.Affine):
    return x @ jnp.asarray(node.weight).T + jnp.asarray(node.bias)
  if isinstance(node, nir.Linear):
    return x @ jnp.asarray(node.weight).T
  if isinstance(node, nir.Conv2d):
    return _run_conv(node, x)
  if isinstance(node, nir.Flatten):
    return x.reshape(*x.shape[:2], -1)
  if isinstance(node, nir.LIF):
    return _run_lif(node, x, dt)
  raise NotImplementedError(f"the interpreter does not run NIR node {type(node).__name__}")


def _topological_order(graph: nir.NIRGraph) -> list[str]:
  preds = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
  order: list[str] = []
  while len(order) < len(graph.nodes):
    ready = [n for n in graph.nodes if n not in order and all(p in order for p in preds[n])]
    if not ready:
      raise NotImplementedError("the interpreter runs feed-forward graphs only (found a cycle)")
    order += ready
  return order


def _check_dt(dt: float) -> None:
  """Raises ValueError unless ``dt`` is a finite number > 0 (NIR's τ = dt / (dt/τ))."""
  if not (isinstance(dt, numbers.Real) and math.isfinite(dt) and dt > 0):
    raise ValueError(f"dt must be a finite number > 0 (the time step), got {dt!r}")


def run_nir(graph: nir.NIRGraph, x: jax.Array, *, dt: float = DEFAULT_DT) -> jax.Array:
  """Runs a feed-forward NIR graph of the nodes `to_nir` emits, forward-Euler with step dt.

  Nodes: Input, Output, Affine, Linear, Conv2d, Flatten, LIF (see the module docstring
  for the discretisation). A node's input is the sum of its predecessors' outputs.

  Args:
    graph: the graph (e.g. from `to_nir`, or read back with `nir.read`).
    x: input ``[T, B, *input_shape]`` in NIR's channel-first layout.
    dt: the simulation time step.

  Returns:
    The ``"output"`` node's output ``[T, B, ...]``.

  Raises:
    ValueError: ``dt`` is not a finite number > 0.
  """
  _check_dt(dt)
  x = jnp.asarray(x, jnp.float32)
  out: dict[str, jax.Array] = {}
  for name in _topological_order(graph):
    preds = [a for a, b in graph.edges if b == name]
    inputs = [out[p] for p in preds]
    node_in = sum(inputs[1:], inputs[0]) if inputs else x
    out[name] = _run_node(graph.nodes[name], node_in, dt)
  return out["output"]
