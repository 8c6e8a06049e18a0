r"""GLIF: the gated leaky integrate-and-fire neuron (Yao et al., NeurIPS 2022).

Every learnable quantity is stored as a raw logit; the value used is ``sigmoid(raw)``.
With gates α, β, γ, membrane decay τ, threshold V_th, leak V_L, reset potential V_R
and time-dependent conductance G_t, for t = 1..T (u_0 = o_0 = 0)::

    I_t = X_t · (1 − β·(1 − G_t))
    u_t = (1 − α·(1 − τ)) · u_{t−1} · (1 − γ·o_{t−1})     # decay, hard-reset share
          − (1 − α) · V_L                                  # linear leak share
          + I_t
          − (1 − γ) · V_R · o_{t−1}                        # soft-reset share
    o_t = H(u_t − V_th),     H(x) = 1[x > 0]  (strictly greater)

The reset uses the previous step's spike and is not detached by default. The default
surrogate is GLIF's rectangle, dH/dx = 1[|x| < 1/2].

GLIF_f, the simplified variant with fixed gates, is
``u_t = τ·u_{t−1}·(1 − o_{t−1}) − V_L + G_t·X_t − V_R·o_{t−1}``. Both are one
recurrence, ``u_t = a·u_{t−1}·(1 − h·o_{t−1}) − l + I_t − s·o_{t−1}``, with
coefficients computed once per call (`_Recurrence`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from glif_jax import surrogates
from glif_jax.neurons import _common

GATINGS = ("soft", "hard", "static")
GATE_INITS = ("random", "fixed")

FIXED_GATES = (0.55, 0.65, 0.55)  # α, β, γ of the authors' fixed mode
RANDOM_GATE_LOGIT_RANGE = 0.1  # random mode: logits ~ U(−0.1, 0.1)


class GLIFParams(NamedTuple):
  """Raw logits of a GLIF layer; each value used is ``sigmoid(raw)``.

  Shapes are ``(C,)`` (channel-wise) or ``()`` (layer-wise), except ``conduct``:
  ``(T, C)`` or ``(T,)``.
  """

  alpha: jax.Array
  beta: jax.Array
  gamma: jax.Array
  tau: jax.Array
  v_th: jax.Array
  leak: jax.Array
  v_reset: jax.Array
  conduct: jax.Array


class GLIFState(NamedTuple):
  """Membrane potential ``u`` and previous spike ``o``, each ``[*batch, C]``."""

  u: jax.Array
  o: jax.Array

  @classmethod
  def zeros(cls, shape: tuple[int, ...], dtype=jnp.float32) -> GLIFState:
    """The resting state of shape ``shape`` (one time step of the input)."""
    return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def _is_count(value: object) -> bool:
  """Whether ``value`` is a positive int (bools, which are ints in Python, are not)."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def glif_params(
  channels: int | None,
  timesteps: int,
  *,
  gate_init: str = "random",
  key: jax.Array | None = None,
  tau: float = 0.25,
  v_th: float = 0.5,
  leak: float | None = None,
  v_reset: float = 0.5,
  conduct: float = 0.5,
  dtype=jnp.float32,
) -> GLIFParams:
  """Initial GLIF parameters; the defaults are the authors' (DESIGN.md §2).

  The initial values are given after the sigmoid, each in (0, 1), and stored as logits.

  Args:
    channels: number of channels C, or ``None`` for layer-wise GLIF (shapes ``()``).
    timesteps: number of time steps T (rows of ``conduct``).
    gate_init: ``"random"`` draws the gate logits from U(−0.1, 0.1) (the authors'
      mode for every published run, needs ``key``); ``"fixed"`` sets α = γ = 0.55,
      β = 0.65.
    key: PRNG key for ``gate_init="random"``.
    tau: membrane decay τ.
    v_th: threshold V_th.
    leak: linear leak V_L; ``None`` means ``v_th / 8``.
    v_reset: reset potential V_R.
    conduct: conductance G_t, the same for every step.
    dtype: parameter dtype.

  Returns:
    `GLIFParams` of raw logits.
  """
  _common.check_choice("gate_init", gate_init, GATE_INITS)
  if channels is not None and not _is_count(channels):
    raise ValueError(f"channels must be a positive int or None (layer-wise), got {channels!r}")
  if not _is_count(timesteps):
    raise ValueError(f"timesteps must be a positive int, got {timesteps!r}")
  if leak is None:
    leak = v_th / 8
  values = dict(tau=tau, v_th=v_th, leak=leak, v_reset=v_reset, conduct=conduct)
  for name, value in values.items():
    if not 0 < value < 1:
      raise ValueError(f"{name} must lie in (0, 1) (a value after the sigmoid), got {value!r}")
  shape = () if channels is None else (channels,)

  def const(value: float, shape=shape) -> jax.Array:
    return jnp.full(shape, _common.logit(value), dtype)

  if gate_init == "random":
    if key is None:
      raise ValueError('gate_init="random" needs a PRNG key, got key=None')
    r = RANDOM_GATE_LOGIT_RANGE
    alpha, beta, gamma = jax.random.uniform(key, (3, *shape), dtype, -r, r)
  else:
    alpha, beta, gamma = (const(g) for g in FIXED_GATES)
  return GLIFParams(
    alpha=alpha,
    beta=beta,
    gamma=gamma,
    tau=const(tau),
    v_th=const(v_th),
    leak=const(leak),
    v_reset=const(v_reset),
    conduct=const(conduct, (timesteps, *shape)),
  )


class _Recurrence(NamedTuple):
  """Coefficients of ``u_t = decay·u·(1 − hard·o) − leak + I_t − soft·o``."""

  decay: jax.Array
  hard: jax.Array
  leak: jax.Array
  soft: jax.Array
  v_th: jax.Array


def _gate(raw: jax.Array, gating: str) -> jax.Array:
  value = jax.nn.sigmoid(raw)
  if gating == "hard":  # 1[σ(raw) > 0.5] forward, straight-through backward
    return value + jax.lax.stop_gradient(
      jnp.where(value > 0.5, 1.0, 0.0).astype(value.dtype) - value
    )
  if gating == "static":
    return jax.lax.stop_gradient(value)
  return value


def glif_gates(p: GLIFParams, *, gating: str = "soft") -> tuple[jax.Array, jax.Array, jax.Array]:
  """The values ``(α, β, γ)`` of GLIF's gates as the forward pass uses them under ``gating``."""
  _common.check_choice("gating", gating, GATINGS)
  return _gate(p.alpha, gating), _gate(p.beta, gating), _gate(p.gamma, gating)


def _glif_recurrence(p: GLIFParams, gating: str, dtype) -> _Recurrence:
  alpha, gamma = _gate(p.alpha, gating), _gate(p.gamma, gating)
  tau, v_th, leak, v_reset = (jax.nn.sigmoid(a) for a in (p.tau, p.v_th, p.leak, p.v_reset))
  coeffs = _Recurrence(
    decay=1 - alpha * (1 - tau),
    hard=gamma,
    leak=(1 - alpha) * leak,
    soft=(1 - gamma) * v_reset,
    v_th=v_th,
  )
  return _common.cast_tree(coeffs, dtype)


def _glif_gain(p: GLIFParams, conduct: jax.Array, gating: str) -> jax.Array:
  """Input gain ``1 − β·(1 − G)`` for the raw conductance ``conduct``."""
  return 1 - _gate(p.beta, gating) * (1 - jax.nn.sigmoid(conduct))


def _glif_f_recurrence(p: GLIFParams, dtype) -> _Recurrence:
  tau, v_th, leak, v_reset = (jax.nn.sigmoid(a) for a in (p.tau, p.v_th, p.leak, p.v_reset))
  coeffs = _Recurrence(decay=tau, hard=jnp.ones_like(tau), leak=leak, soft=v_reset, v_th=v_th)
  return _common.cast_tree(coeffs, dtype)


def _update(
  c: _Recurrence,
  state: GLIFState,
  current: jax.Array,
  surrogate: surrogates.Surrogate,
  detach_reset: bool,
) -> tuple[jax.Array, GLIFState]:
  o_prev = jax.lax.stop_gradient(state.o) if detach_reset else state.o
  u = c.decay * state.u * (1 - c.hard * o_prev) - c.leak + current - c.soft * o_prev
  o = surrogate(u - c.v_th)
  return o, GLIFState(u, o)


def _check_channel_params(p: GLIFParams, channels: int) -> None:
  if not isinstance(p, GLIFParams):
    raise TypeError(f"params must be GLIFParams, got {type(p).__name__}")
  for name in GLIFParams._fields[:-1]:
    _common.check_channel_param(name, getattr(p, name), channels)


def _check_params(p: GLIFParams, x: jax.Array) -> None:
  timesteps, channels = x.shape[0], x.shape[-1]
  _check_channel_params(p, channels)
  conduct_shape = jnp.shape(p.conduct)
  per_channel = jnp.shape(p.alpha)
  if conduct_shape != (timesteps, *per_channel):
    raise ValueError(
      f"parameter conduct must have shape {(timesteps, *per_channel)} (x's T = {timesteps} "
      f"time steps{', C' if per_channel else ''}), got shape {conduct_shape}"
    )


def _run(
  coeffs: _Recurrence,
  gain: jax.Array,
  x: jax.Array,
  state: GLIFState | None,
  *,
  surrogate: surrogates.Surrogate,
  detach_reset: bool,
  unroll: int | bool | None,
  remat: bool | None,
  return_trace: bool,
):
  if state is None:
    state = GLIFState.zeros(x.shape[1:], x.dtype)
  else:
    _common.check_state(state, x.shape[1:])
    state = _common.cast_tree(state, x.dtype)
  currents = x * _common.time_expand(gain.astype(x.dtype), x.ndim)

  def step(s, current):
    return _update(coeffs, s, current, surrogate, detach_reset)

  return _common.scan_time(
    step, state, currents, unroll=unroll, remat=remat, return_trace=return_trace
  )


def glif(
  p: GLIFParams,
  x: jax.Array,
  state: GLIFState | None = None,
  *,
  gating: str = "soft",
  surrogate: surrogates.Surrogate = surrogates.rectangle(),
  detach_reset: bool = False,
  unroll: int | bool | None = None,
  remat: bool | None = None,
  return_trace: bool = False,
):
  """Runs a GLIF layer over time.

  Args:
    p: raw-logit parameters (see `glif_params`).
    x: input current ``[T, *batch, C]`` (time-major, channel-last).
    state: state before the first step, ``GLIFState`` of ``[*batch, C]``; zeros if None.
    gating: ``"soft"`` (gates σ(raw)), ``"hard"`` (1[σ(raw) > 0.5] with a
      straight-through gradient) or ``"static"`` (σ(raw), not trained).
    surrogate: spike function; the default is GLIF's rectangle of width 1.
    detach_reset: stop gradients through the previous spike in the reset.
    unroll: `jax.lax.scan` unroll factor; None: full unroll for T <= 32, else none.
    remat: recompute each step in the backward pass instead of storing it;
      None: only for T > 32, where it is also faster.
    return_trace: also return the `GLIFState` after every step, stacked ``[T, ...]``.

  Returns:
    ``(spikes, final_state)`` with spikes shaped like ``x``; with ``return_trace``,
    ``(spikes, final_state, trace)``.
  """
  _common.check_choice("gating", gating, GATINGS)
  x = _common.check_input(x)
  _check_params(p, x)
  return _run(
    _glif_recurrence(p, gating, x.dtype),
    _glif_gain(p, p.conduct, gating),
    x,
    state,
    surrogate=surrogate,
    detach_reset=detach_reset,
    unroll=unroll,
    remat=remat,
    return_trace=return_trace,
  )


def glif_step(
  p: GLIFParams,
  state: GLIFState,
  x_t: jax.Array,
  conduct_t: jax.Array,
  *,
  gating: str = "soft",
  surrogate: surrogates.Surrogate = surrogates.rectangle(),
  detach_reset: bool = False,
) -> tuple[jax.Array, GLIFState]:
  """One GLIF time step: the same update as `glif`.

  Args:
    p: raw-logit parameters; ``p.conduct`` is ignored in favour of ``conduct_t``.
    state: `GLIFState` of ``[*batch, C]``.
    x_t: input of this step, ``[*batch, C]``.
    conduct_t: raw conductance logit of this step, shaped as the other parameters,
      ``(C,)`` or ``()`` (e.g. ``p.conduct[t]``).
    gating, surrogate, detach_reset: as in `glif`.

  Returns:
    ``(spike_t, new_state)``.
  """
  _common.check_choice("gating", gating, GATINGS)
  x_t = _common.check_step_input(x_t)
  _check_channel_params(p, x_t.shape[-1])
  if jnp.shape(conduct_t) != jnp.shape(p.alpha):
    raise ValueError(
      f"conduct_t must have shape {jnp.shape(p.alpha)} (one row of conduct, as the "
      f"parameters), got shape {jnp.shape(conduct_t)}"
    )
  _common.check_state(state, x_t.shape)
  coeffs = _glif_recurrence(p, gating, x_t.dtype)
  current = x_t * _glif_gain(p, conduct_t, gating).astype(x_t.dtype)
  return _update(coeffs, state, current, surrogate, detach_reset)


def glif_f(
  p: GLIFParams,
  x: jax.Array,
  state: GLIFState | None = None,
  *,
  surrogate: surrogates.Surrogate = surrogates.rectangle(),
  detach_reset: bool = False,
  unroll: int | bool | None = None,
  remat: bool | None = None,
  return_trace: bool = False,
):
  """Runs GLIF_f, the simplified fixed-gate GLIF, over time.

  ``u_t = τ·u_{t−1}·(1 − o_{t−1}) − V_L + G_t·X_t − V_R·o_{t−1}``; the gate
  logits of ``p`` are unused. Arguments and returns as in `glif`.
  """
  x = _common.check_input(x)
  _check_params(p, x)
  return _run(
    _glif_f_recurrence(p, x.dtype),
    jax.nn.sigmoid(p.conduct),
    x,
    state,
    surrogate=surrogate,
    detach_reset=detach_reset,
    unroll=unroll,
    remat=remat,
    return_trace=return_trace,
  )
