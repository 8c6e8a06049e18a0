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
``u_t = τ·u_{t−1}·(1 − o_{t−1}) − V_L + G_t·X_t − V_R·o_{t−1}``. Both are one update
in the terms of `glif_coefficients`::

    u_t = decay·u_{t−1}·(1 − hard_reset·o_{t−1}) − leak + gain_t·X_t − soft_reset·o_{t−1}

`glif` runs it over time with a hand-written backward pass (`_update_vjp`): it keeps
one membrane potential per step and reduces the parameter gradients step by step.
"""

from __future__ import annotations

import functools
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
  values = {"tau": tau, "v_th": v_th, "leak": leak, "v_reset": v_reset, "conduct": conduct}
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


class GLIFCoefficients(NamedTuple):
  """GLIF's update in the values it uses (not logits); see the module docstring.

  Attributes:
    decay: membrane kept per step, ``1 − α(1 − τ)`` (GLIF_f: τ).
    hard_reset: share of the decayed membrane a spike clears, ``γ`` (GLIF_f: 1).
    leak: subtracted every step, ``(1 − α)·V_L`` (GLIF_f: V_L).
    soft_reset: subtracted after a spike, ``(1 − γ)·V_R`` (GLIF_f: V_R).
    gain: input gain of each step, ``1 − β(1 − G_t)`` (GLIF_f: G_t), shaped as ``conduct``.
    v_th: threshold V_th.
  """

  decay: jax.Array
  hard_reset: jax.Array
  leak: jax.Array
  soft_reset: jax.Array
  gain: jax.Array
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


def glif_coefficients(
  p: GLIFParams, *, gating: str = "soft", simplified: bool = False
) -> GLIFCoefficients:
  """The terms of GLIF's update (GLIF_f's if ``simplified``) from raw logits.

  Args:
    p: raw-logit parameters; ``gain`` takes the shape of ``p.conduct``.
    gating: how the gates are used (see `glif`); unused by GLIF_f.
    simplified: the terms of GLIF_f, whose gates are fixed.

  Returns:
    `GLIFCoefficients`, differentiable with respect to ``p``.
  """
  tau, v_th, leak, v_reset, conduct = map(
    jax.nn.sigmoid, (p.tau, p.v_th, p.leak, p.v_reset, p.conduct)
  )
  if simplified:
    return GLIFCoefficients(tau, jnp.ones_like(tau), leak, v_reset, conduct, v_th)
  alpha, beta, gamma = glif_gates(p, gating=gating)
  return GLIFCoefficients(
    decay=1 - alpha * (1 - tau),
    hard_reset=gamma,
    leak=(1 - alpha) * leak,
    soft_reset=(1 - gamma) * v_reset,
    gain=1 - beta * (1 - conduct),
    v_th=v_th,
  )


def _update(
  c: GLIFCoefficients,
  state: GLIFState,
  x_t: jax.Array,
  gain_t: jax.Array,
  spike=surrogates.heaviside,
) -> tuple[jax.Array, GLIFState]:
  """One step: ``u_t = decay·u·(1 − hard_reset·o) − leak + gain_t·x_t − soft_reset·o``."""
  u, o = state
  u = c.decay * u * (1 - c.hard_reset * o) - c.leak + gain_t * x_t - c.soft_reset * o
  o = spike(u - c.v_th)
  return o, GLIFState(u, o)


class _Sums(NamedTuple):
  """Per-step sums over the batch from which `_update_vjp` builds the parameter gradients."""

  du_u: jax.Array  # Σ δu_{t+1}·u_t
  du_o_u: jax.Array  # Σ δu_{t+1}·o_t·u_t
  du_o: jax.Array  # Σ δu_{t+1}·o_t
  du: jax.Array  # Σ δu_t


def _update_vjp(c, du_next, u, o, total, detach_reset):
  r"""Backpropagates ``δu_{t+1} = ∂L/∂u_{t+1}`` through `_update` to ``(u_t, o_t)``.

  ``∂u_{t+1}/∂u_t = decay·(1 − hard_reset·o_t)`` and, unless the reset is detached,
  ``∂u_{t+1}/∂o_t = −(decay·hard_reset·u_t + soft_reset)``. Also returns the sums over
  the batch (``total``) that the gradients of decay, hard_reset and soft_reset need:
  ``Σ δu_{t+1}·u_t``, ``Σ δu_{t+1}·o_t·u_t`` and ``Σ δu_{t+1}·o_t``.
  """
  du_o = du_next * o
  du = c.decay * (du_next - c.hard_reset * du_o)
  if detach_reset:
    do = jnp.zeros_like(u)
  else:
    do = -(c.decay * c.hard_reset * u + c.soft_reset) * du_next
  return du, do, (total(du_next * u), total(du_o * u), total(du_o))


def _forward(
  c: GLIFCoefficients, x: jax.Array, state: GLIFState | None, unroll
) -> list | jax.Array:
  """The membrane potential after every step: ``[T, *batch, C]``, a list if unrolled."""
  if state is None:  # rest, a constant XLA folds into the first step
    state = GLIFState.zeros(x.shape[1:], x.dtype)

  def step(s, inputs):
    _, s = _update(c, s, *inputs)
    return s, s.u

  return _common.time_loop(step, state, (x, _common.time_expand(c.gain, x.ndim)), unroll=unroll)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _run(c, x, state, surrogate, detach_reset, unroll, remat):
  """``(spikes, u)``, each ``[T, *batch, C]``, of `_update` from ``state`` (None: rest)."""
  u = _common.stack(_forward(c, x, state, unroll))
  return surrogates.heaviside(u - c.v_th), u


def _run_fwd(c, x, state, surrogate, detach_reset, unroll, remat):
  us = _forward(c, x, state, unroll)
  u = _common.stack(us)
  return (surrogates.heaviside(u - c.v_th), u), (c, x, state, None if remat else us)


def _run_bwd(surrogate, detach_reset, unroll, remat, residuals, cotangents):
  """Backpropagation through time, the parameter gradients summed over the batch per step."""
  c, x, state, us = residuals
  ct_spikes, ct_u = cotangents
  if us is None:
    us = _forward(c, x, state, unroll)
  per_channel = jnp.ndim(c.v_th) == 1
  total = functools.partial(jnp.sum, axis=tuple(range(x.ndim - 1 - per_channel)))

  def step(du_next, inputs):  # δu_{t+1} -> δu_t
    u, ct_spike, ct_u_t = inputs
    o = surrogates.heaviside(u - c.v_th)
    du_kept, do, sums = _update_vjp(c, du_next, u, o, total, detach_reset)
    du = du_kept + ct_u_t + (ct_spike + do) * surrogate.grad(u - c.v_th)
    return du, (du, _Sums(*sums, total(du)))

  du_1, per_step = _common.time_loop(
    step, jnp.zeros(x.shape[1:], x.dtype), (us, ct_spikes, ct_u), unroll=unroll, reverse=True
  )
  du, sums = _common.stack(per_step)
  first_du, sums = sums.du[0], _Sums(*(jnp.sum(s, 0) for s in sums))  # over time
  if state is None:  # from rest: u_0 = o_0 = 0 add nothing
    state_grads = None
    du_u, du_o_u, du_o = sums[:3]
  else:
    du_0, do_0, sums_0 = _update_vjp(c, du_1, state.u, state.o, total, detach_reset)
    state_grads = GLIFState(du_0, do_0)
    du_u, du_o_u, du_o = (s + s0 for s, s0 in zip(sums, sums_0))
  # Σ_t ∂L/∂o_t·H'(u_t − V_th) = Σ_t δu_t − decay·Σ_t (δu_{t+1} − hard_reset·δu_{t+1}·o_t)
  #   − Σ_t ct_u_t, with Σ_t δu_{t+1} = Σ_t δu_t − Σ δu_1 (the loop's δu_{t+1}·o_t sums)
  spike_total = sums.du - c.decay * (sums.du - first_du - c.hard_reset * sums.du_o)
  spike_total -= jnp.sum(ct_u, axis=tuple(range(x.ndim - per_channel)))
  grads = GLIFCoefficients(
    decay=du_u - c.hard_reset * du_o_u,
    hard_reset=-c.decay * du_o_u,
    leak=-sums.du,
    soft_reset=-du_o,
    gain=jnp.sum(du * x, axis=tuple(range(1, x.ndim - per_channel))),
    v_th=-spike_total,
  )
  return grads, du * _common.time_expand(c.gain, x.ndim), state_grads


_run.defvjp(_run_fwd, _run_bwd)


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


GLIFResult = tuple[jax.Array, GLIFState] | tuple[jax.Array, GLIFState, GLIFState]


def _run_over_time(
  c: GLIFCoefficients,
  x: jax.Array,
  state: GLIFState | None,
  *,
  surrogate: surrogates.Surrogate,
  detach_reset: bool,
  unroll: int | bool | None,
  remat: bool | None,
  return_trace: bool,
) -> GLIFResult:
  if state is not None:
    _common.check_state(state, x.shape[1:])
    state = _common.cast_tree(state, x.dtype)
  unroll, remat = _common.loop_defaults(x.shape[0], unroll, remat)
  c = _common.cast_tree(c, x.dtype)
  spikes, u = _run(c, x, state, surrogate, detach_reset, unroll, remat)
  final = GLIFState(u[-1], spikes[-1])
  return (spikes, final, GLIFState(u, spikes)) if return_trace else (spikes, final)


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
) -> GLIFResult:
  """Runs a GLIF layer over time.

  Args:
    p: raw-logit parameters (see `glif_params`).
    x: input current ``[T, *batch, C]`` (time-major, channel-last).
    state: state before the first step, ``GLIFState`` of ``[*batch, C]``; zeros if None.
    gating: ``"soft"`` (gates σ(raw)), ``"hard"`` (1[σ(raw) > 0.5] with a
      straight-through gradient) or ``"static"`` (σ(raw), not trained).
    surrogate: spike function; the default is GLIF's rectangle of width 1.
    detach_reset: stop gradients through the previous spike in the reset.
    unroll: unroll factor of the time loop (`jax.lax.scan`); ``True`` runs it as
      straight-line code. None: ``True`` for T <= 32, else 1.
    remat: recompute the membrane potentials in the backward pass instead of storing
      them (``T·|x|`` less memory between the passes, one more forward pass);
      None: only for T > 32.
    return_trace: also return the `GLIFState` after every step, stacked ``[T, ...]``.

  Returns:
    ``(spikes, final_state)`` with spikes shaped like ``x``; with ``return_trace``,
    ``(spikes, final_state, trace)``.

  The backward pass is written by hand (reverse mode: `jax.grad`, `jax.vjp`); forward
  mode (`jax.jvp`) is not defined for it — loop `glif_step` where it is needed.
  """
  x = _common.check_input(x)
  _check_params(p, x)
  return _run_over_time(
    glif_coefficients(p, gating=gating),
    x,
    state,
    surrogate=surrogate,
    detach_reset=detach_reset,
    unroll=unroll,
    remat=remat,
    return_trace=return_trace,
  )


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
) -> GLIFResult:
  """Runs GLIF_f, the simplified fixed-gate GLIF, over time.

  ``u_t = τ·u_{t−1}·(1 − o_{t−1}) − V_L + G_t·X_t − V_R·o_{t−1}``; the gate
  logits of ``p`` are unused. Arguments and returns as in `glif`.
  """
  x = _common.check_input(x)
  _check_params(p, x)
  return _run_over_time(
    glif_coefficients(p, simplified=True),
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
  """One GLIF time step, the update of `glif`, differentiated by autodiff.

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
  x_t = _common.check_step_input(x_t)
  _check_channel_params(p, x_t.shape[-1])
  if jnp.shape(conduct_t) != jnp.shape(p.alpha):
    raise ValueError(
      f"conduct_t must have shape {jnp.shape(p.alpha)} (one row of conduct, as the "
      f"parameters), got shape {jnp.shape(conduct_t)}"
    )
  _common.check_state(state, x_t.shape)
  c = glif_coefficients(p._replace(conduct=conduct_t), gating=gating)
  c = _common.cast_tree(c, x_t.dtype)
  if detach_reset:
    state = state._replace(o=jax.lax.stop_gradient(state.o))
  return _update(c, state, x_t, c.gain, surrogate)
