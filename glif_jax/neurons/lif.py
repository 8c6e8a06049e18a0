r"""LIF and PLIF: leaky integrate-and-fire with a fixed or learnable time constant.

As SpikingJelly's ``LIFNode`` / ``ParametricLIFNode``, for t = 1..T (V_0 = V_reset, or
0 with soft reset)::

    H_t = V_{t−1} + (X_t − (V_{t−1} − V_reset)) / τ       (decay_input=True)
    H_t = V_{t−1} − (V_{t−1} − V_reset) / τ + X_t         (decay_input=False)
    S_t = Θ(H_t − V_th),     Θ(x) = 1[x >= 0]
    V_t = H_t·(1 − S_t) + V_reset·S_t                     (hard reset)
    V_t = H_t − V_th·S_t                                  (soft reset, v_reset=None)

PLIF learns ``1/τ = sigmoid(w)`` from the raw logit ``w`` (init ``w = −log(τ_0 − 1)``).
KLIF (`glif_jax.neurons.klif`) inserts ``F_t = ReLU(k·H_t)`` between charge and fire.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glif_jax import surrogates
from glif_jax.neurons import _common


class LIFState(NamedTuple):
  """Membrane potential ``v``, ``[*batch, C]``."""

  v: jax.Array

  @classmethod
  def zeros(cls, shape: tuple[int, ...], dtype=jnp.float32) -> LIFState:
    """The state of potential 0 (``v_reset`` 0 or soft reset) of shape ``shape``."""
    return cls(jnp.zeros(shape, dtype))


LIFResult = tuple[jax.Array, LIFState] | tuple[jax.Array, LIFState, LIFState]
"""``(spikes, final_state)``, or ``(spikes, final_state, trace)`` with ``return_trace``."""


class PLIFParams(NamedTuple):
  """Raw logit ``w`` of PLIF, ``1/τ = sigmoid(w)``; shape ``()`` or ``(C,)``."""

  w: jax.Array


def plif_params(
  init_tau: float = 2.0, channels: int | None = None, *, dtype=jnp.float32
) -> PLIFParams:
  """PLIF parameters with ``τ = init_tau`` (> 1); layer-wise (shape ``()``) unless ``channels``."""
  if not init_tau > 1:
    raise ValueError(f"init_tau must be > 1, got {init_tau!r}")
  shape = () if channels is None else (channels,)
  return PLIFParams(jnp.full(shape, -np.log(init_tau - 1), dtype))


def _initial_state(state: LIFState | None, x: jax.Array, v_reset: float | None) -> LIFState:
  if state is None:
    rest = 0.0 if v_reset is None else v_reset
    return LIFState(jnp.full(x.shape[1:], rest, x.dtype))
  _common.check_state(state, x.shape[1:])
  return _common.cast_tree(state, x.dtype)


def lif_update(
  v: jax.Array,
  x_t: jax.Array,
  *,
  inv_tau: jax.Array,
  v_th: float,
  v_reset: float | None,
  decay_input: bool,
  surrogate: surrogates.Surrogate,
  detach_reset: bool,
  k: jax.Array | None = None,
  scale_reset: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Charge, fire and reset of LIF/PLIF, and of KLIF when ``k`` is given.

  Returns ``(spike, new_v)``.
  """
  rest = 0.0 if v_reset is None else v_reset
  if decay_input:
    h = v + (x_t - (v - rest)) * inv_tau
  else:
    h = v - (v - rest) * inv_tau + x_t
  if k is not None:
    h = jax.nn.relu(k * h)
  spike = surrogate(h - v_th, inclusive=True)
  s = jax.lax.stop_gradient(spike) if detach_reset else spike
  if v_reset is None:
    new_v = h - v_th * s
    if scale_reset:
      new_v = new_v / k
  else:
    if scale_reset:
      h = h / k
    new_v = h * (1 - s) + v_reset * s
  return spike, new_v


def run_lif(
  x, state, *, inv_tau, v_reset, unroll, remat, return_trace, **update_kwargs
) -> LIFResult:
  """Scans `lif_update` over time; shared by `lif`, `plif` and KLIF."""
  x = _common.check_input(x)
  state = _initial_state(state, x, v_reset)
  inv_tau = jnp.asarray(inv_tau).astype(x.dtype)

  def step(s, x_t):
    spike, v = lif_update(s.v, x_t, inv_tau=inv_tau, v_reset=v_reset, **update_kwargs)
    return spike, LIFState(v)

  return _common.scan_time(step, state, x, unroll=unroll, remat=remat, return_trace=return_trace)


def lif(
  x: jax.Array,
  state: LIFState | None = None,
  *,
  tau: float = 2.0,
  v_th: float = 1.0,
  v_reset: float | None = 0.0,
  decay_input: bool = True,
  surrogate: surrogates.Surrogate = surrogates.sigmoid(4.0),
  detach_reset: bool = False,
  unroll: int | bool | None = None,
  remat: bool | None = None,
  return_trace: bool = False,
) -> LIFResult:
  """Runs a LIF layer over time.

  Args:
    x: input current ``[T, *batch, C]``.
    state: `LIFState` of ``[*batch, C]`` before the first step; ``V = v_reset`` if None.
    tau: membrane time constant (> 0).
    v_th: threshold; fires when ``H − v_th >= 0``.
    v_reset: reset potential (hard reset), or ``None`` for soft reset (subtract v_th).
    decay_input: whether the input is divided by τ too.
    surrogate: spike function (default: sigmoid, α = 4, as SpikingJelly).
    detach_reset: stop gradients through the spike in the reset.
    unroll, remat, return_trace: as in `glif_jax.neurons.glif`.

  Returns:
    ``(spikes, final_state)`` (and the stacked `LIFState` trace if ``return_trace``).
  """
  _common.check_tau(tau)
  return run_lif(
    x,
    state,
    inv_tau=1.0 / tau,
    v_th=v_th,
    v_reset=v_reset,
    decay_input=decay_input,
    surrogate=surrogate,
    detach_reset=detach_reset,
    unroll=unroll,
    remat=remat,
    return_trace=return_trace,
  )


def lif_step(
  state: LIFState,
  x_t: jax.Array,
  *,
  tau: float = 2.0,
  v_th: float = 1.0,
  v_reset: float | None = 0.0,
  decay_input: bool = True,
  surrogate: surrogates.Surrogate = surrogates.sigmoid(4.0),
  detach_reset: bool = False,
) -> tuple[jax.Array, LIFState]:
  """One LIF time step: ``(spike_t, new_state)``; arguments as in `lif`."""
  _common.check_tau(tau)
  x_t = _common.check_step_input(x_t)
  _common.check_state(state, x_t.shape)
  spike, v = lif_update(
    state.v,
    x_t,
    inv_tau=1.0 / tau,
    v_th=v_th,
    v_reset=v_reset,
    decay_input=decay_input,
    surrogate=surrogate,
    detach_reset=detach_reset,
  )
  return spike, LIFState(v)


def plif(
  p: PLIFParams,
  x: jax.Array,
  state: LIFState | None = None,
  *,
  v_th: float = 1.0,
  v_reset: float | None = 0.0,
  decay_input: bool = True,
  surrogate: surrogates.Surrogate = surrogates.sigmoid(4.0),
  detach_reset: bool = False,
  unroll: int | bool | None = None,
  remat: bool | None = None,
  return_trace: bool = False,
) -> LIFResult:
  """Runs a PLIF layer (LIF with learnable ``1/τ = sigmoid(p.w)``) over time.

  Arguments and returns as in `lif`; ``p.w`` has shape ``()`` or ``(C,)``.
  """
  if not isinstance(p, PLIFParams):
    raise TypeError(f"params must be PLIFParams, got {type(p).__name__}")
  x = _common.check_input(x)
  _common.check_channel_param("w", p.w, x.shape[-1])
  return run_lif(
    x,
    state,
    inv_tau=jax.nn.sigmoid(p.w),
    v_th=v_th,
    v_reset=v_reset,
    decay_input=decay_input,
    surrogate=surrogate,
    detach_reset=detach_reset,
    unroll=unroll,
    remat=remat,
    return_trace=return_trace,
  )
