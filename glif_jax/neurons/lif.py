r"""LIF and PLIF: leaky integrate-and-fire with a fixed or learnable time constant.

As SpikingJelly's ``LIFNode`` / ``ParametricLIFNode``, for t = 1..T (V_0 = V_reset, or
0 with soft reset)::

    H_t = V_{t−1} + (X_t − (V_{t−1} − V_reset)) / τ       (decay_input=True)
    H_t = V_{t−1} − (V_{t−1} − V_reset) / τ + X_t         (decay_input=False)
    S_t = Θ(H_t − V_th),     Θ(x) = 1[x >= 0]
    V_t = H_t·(1 − S_t) + V_reset·S_t                     (hard reset)
    V_t = H_t − V_th·S_t                                  (soft reset, v_reset=None)

`lif_step` is this update. LIF takes τ from `LIFConstants` (its params are ``None``);
PLIF learns ``1/τ = sigmoid(w)`` from the raw logit ``w`` of `PLIFParams` (init
``w = −log(τ_0 − 1)``). `lif`, `plif` (and `lif_trace`, `plif_trace`) run it over
time with `glif_jax.neurons.run`. KLIF (`glif_jax.neurons.klif`) inserts
``F_t = ReLU(k·H_t)`` between charge and fire and shares `LIFConstants`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glif_jax import surrogates
from glif_jax.neurons import _common
from glif_jax.neurons._loop import run, run_trace


class LIFConstants(NamedTuple):
  """The constants of LIF, PLIF and KLIF; hashable, so a static argument of `jax.jit`.

  Attributes:
    tau: membrane time constant τ (> 0); unused by PLIF, which learns it.
    v_th: threshold V_th; fires when ``H − V_th >= 0`` (KLIF: ``F − V_th``).
    v_reset: reset potential (hard reset), or ``None`` for soft reset (subtract V_th).
    decay_input: whether the input is divided by τ too.
    scale_reset: KLIF only: divide the kept potential by k.
    detach_reset: stop gradients through the spike in the reset.
    surrogate: spike function (default: sigmoid, α = 4, as SpikingJelly).
  """

  tau: float = 2.0
  v_th: float = 1.0
  v_reset: float | None = 0.0
  decay_input: bool = True
  scale_reset: bool = False
  detach_reset: bool = False
  surrogate: surrogates.Surrogate = surrogates.sigmoid(4.0)

  def validated(self) -> LIFConstants:
    """Returns these constants, or raises naming the field, what it must be and its value."""
    if not self.tau > 0:
      raise ValueError(f"tau must be > 0, got {self.tau!r}")
    if not isinstance(self.surrogate, surrogates.Surrogate):
      raise TypeError(f"surrogate must be a surrogates.Surrogate, got {self.surrogate!r}")
    return self


class LIFState(NamedTuple):
  """Membrane potential ``v``, ``[*batch, C]``."""

  v: jax.Array

  @classmethod
  def zeros(cls, shape: tuple[int, ...], dtype=jnp.float32) -> LIFState:
    """The state of potential 0 (``v_reset`` 0 or soft reset) of shape ``shape``."""
    return cls(jnp.zeros(shape, dtype))


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


def lif_step(
  params: PLIFParams | None,
  state: LIFState,
  x_t: jax.Array,
  *,
  constants: LIFConstants = LIFConstants(),
) -> tuple[jax.Array, LIFState]:
  """One LIF (``params=None``) or PLIF (`PLIFParams`) time step, the module docstring's update.

  Args:
    params: ``None`` for LIF (τ = ``constants.tau``), or `PLIFParams` (1/τ = sigmoid(w)).
    state: `LIFState` of ``[*batch, C]``.
    x_t: input current of this step, ``[*batch, C]``.
    constants: `LIFConstants` (``scale_reset`` must be False: it is KLIF's).

  Returns:
    ``(S_t, LIFState(V_t))``.
  """
  x_t = _check_step(params, state, x_t)
  c = _common.check_constants(constants, LIFConstants)
  if c.scale_reset:
    raise ValueError("scale_reset divides by KLIF's k: LIF and PLIF take scale_reset=False")
  inv_tau = 1.0 / c.tau if params is None else jax.nn.sigmoid(params.w).astype(x_t.dtype)
  h = charge(state.v, x_t, inv_tau, c)
  spike = c.surrogate(h - c.v_th, inclusive=True)
  s = jax.lax.stop_gradient(spike) if c.detach_reset else spike
  v = h - c.v_th * s if c.v_reset is None else h * (1 - s) + c.v_reset * s
  return spike, LIFState(v)


def charge(
  v: jax.Array, x_t: jax.Array, inv_tau: float | jax.Array, constants: LIFConstants
) -> jax.Array:
  """H_t of the module docstring from V_{t−1} and X_t (LIF, PLIF and KLIF charge alike)."""
  v_rest = _rest_potential(constants)
  if constants.decay_input:
    return v + (x_t - (v - v_rest)) * inv_tau
  return v - (v - v_rest) * inv_tau + x_t


def _rest_potential(constants: LIFConstants) -> float:
  """V_reset, or 0 with soft reset (``v_reset=None``)."""
  return 0.0 if constants.v_reset is None else constants.v_reset


def _check_step(params: PLIFParams | None, state: LIFState, x_t: jax.Array) -> jax.Array:
  x_t = _common.check_step_input(x_t)
  if params is not None:
    _check_params(params, x_t.shape[-1])
  _common.check_state(state, x_t.shape)
  return x_t


def _check_params(p: PLIFParams, channels: int) -> None:
  if not isinstance(p, PLIFParams):
    raise TypeError(f"params must be PLIFParams (or None for LIF), got {type(p).__name__}")
  _common.check_channel_param("w", p.w, channels)


def initial_state(
  state: LIFState | None, x: jax.Array, constants: LIFConstants
) -> LIFState | Callable[[], LIFState]:
  """``state`` checked and cast to ``x``'s dtype, or the function that builds the rest
  state V = V_reset (0 with soft reset), which `glif_jax.neurons.run` need not keep."""
  if state is None:
    rest = functools.partial(jnp.full, x.shape[1:], _rest_potential(constants), x.dtype)
    return lambda: LIFState(rest())
  _common.check_state(state, x.shape[1:])
  return _common.cast_tree(state, x.dtype)


def _run(loop, params, x, state, constants, unroll):
  """Checks the arguments, then `run` or `run_trace` (``loop``) of `lif_step`."""
  constants = _common.check_constants(constants, LIFConstants)
  x = _common.check_input(x)
  if params is not None:
    _check_params(params, x.shape[-1])
  state = initial_state(state, x, constants)
  step = functools.partial(lif_step, constants=constants)
  return loop(step, params, x, state, unroll=unroll)


def _run_plif(loop, p, x, state, constants, unroll):
  """`_run` for PLIF, which needs its parameters (LIF is the neuron without)."""
  if p is None:
    raise TypeError("params must be PLIFParams, got None (LIF is the neuron without parameters)")
  return _run(loop, p, x, state, constants, unroll)


def lif(
  x: jax.Array,
  state: LIFState | None = None,
  *,
  constants: LIFConstants = LIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, LIFState]:
  """Runs a LIF layer over time: `lif_step` with ``params=None`` at every step.

  Args:
    x: input current ``[T, *batch, C]``.
    state: `LIFState` of ``[*batch, C]`` before the first step; ``V = v_reset`` if None.
    constants: `LIFConstants`.
    unroll: the time-loop policy of `glif_jax.neurons.run`.

  Returns:
    ``(spikes, final_state)``.
  """
  return _run(run, None, x, state, constants, unroll)


def lif_trace(
  x: jax.Array,
  state: LIFState | None = None,
  *,
  constants: LIFConstants = LIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, LIFState]:
  """`lif`, returning ``(spikes, trace)``: the `LIFState` after every step, ``[T, ...]``."""
  return _run(run_trace, None, x, state, constants, unroll)


def plif(
  p: PLIFParams,
  x: jax.Array,
  state: LIFState | None = None,
  *,
  constants: LIFConstants = LIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, LIFState]:
  """Runs a PLIF layer (LIF with learnable ``1/τ = sigmoid(p.w)``) over time.

  Arguments and returns as in `lif`; ``p.w`` has shape ``()`` or ``(C,)``;
  ``constants.tau`` is unused.
  """
  return _run_plif(run, p, x, state, constants, unroll)


def plif_trace(
  p: PLIFParams,
  x: jax.Array,
  state: LIFState | None = None,
  *,
  constants: LIFConstants = LIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, LIFState]:
  """`plif`, returning ``(spikes, trace)``: the `LIFState` after every step, ``[T, ...]``."""
  return _run_plif(run_trace, p, x, state, constants, unroll)
