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

GLIF_f, the simplified variant with fixed gates (``GLIFConstants(simplified=True)``), is
``u_t = τ·u_{t−1}·(1 − o_{t−1}) − V_L + G_t·X_t − V_R·o_{t−1}``. Both are one update in
the terms of `glif_coefficients`, which `glif_step` writes out::

    u_t = decay·u_{t−1}·(1 − hard_reset·o_{t−1}) − leak + gain_t·X_t − soft_reset·o_{t−1}

with decay = 1 − α(1 − τ), hard_reset = γ, leak = (1 − α)·V_L, soft_reset = (1 − γ)·V_R
and gain_t = 1 − β(1 − G_t) (GLIF_f: τ, 1, V_L, V_R and G_t).

Layout: this module holds the parameters, state, constants, coefficients and the step,
the update's only home; `glif` / `glif_trace` / `glif_f` run `glif_step` over time with
`glif_jax.neurons.run` and its lean backward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from glif_jax import surrogates
from glif_jax._checks import check_choice, check_positive_int
from glif_jax.neurons import _common
from glif_jax.neurons._loop import run, run_trace

GATE_NAMES = ("alpha", "beta", "gamma")  # the gate logits of `GLIFParams`
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
  """Initial GLIF parameters; the defaults are the GLIF authors' code's.

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
  check_choice("gate_init", gate_init, GATE_INITS)
  check_positive_int("channels", channels, none="layer-wise")
  check_positive_int("timesteps", timesteps)
  if leak is None:
    leak = v_th / 8
  values = {"tau": tau, "v_th": v_th, "leak": leak, "v_reset": v_reset, "conduct": conduct}
  for name, value in values.items():
    if not 0 < value < 1:
      raise ValueError(f"{name} must lie in (0, 1) (a value after the sigmoid), got {value!r}")
  shape = () if channels is None else (channels,)

  def const(value: float, shape: tuple[int, ...] = shape) -> jax.Array:
    return jnp.full(shape, _common.logit(value), dtype)

  alpha, beta, gamma = _initial_gate_logits(gate_init, key, shape, dtype)
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


def _initial_gate_logits(
  gate_init: str, key: jax.Array | None, shape: tuple[int, ...], dtype
) -> jax.Array:
  """The logits of α, β, γ stacked ``[3, *shape]`` (see `glif_params`)."""
  if gate_init == "fixed":
    return jnp.stack([jnp.full(shape, _common.logit(g), dtype) for g in FIXED_GATES])
  if key is None:
    raise ValueError('gate_init="random" needs a PRNG key, got key=None')
  r = RANDOM_GATE_LOGIT_RANGE
  return jax.random.uniform(key, (3, *shape), dtype, -r, r)


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
  check_choice("gating", gating, GATINGS)
  return _gate(p.alpha, gating), _gate(p.beta, gating), _gate(p.gamma, gating)


def glif_gate_logits(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """``{layer path: {"alpha", "beta", "gamma": raw logits}}`` of the GLIF layers in a
  nested mapping of parameters, found by the field names of `GLIFParams`.

  For a model's parameters as `flax.nnx.to_pure_dict` gives them, or a checkpoint's as
  restored; paths join the keys with ``/``. GLIF_f layers hold gate logits too (unused).

  >>> p = glif_params(2, 4, gate_init="fixed")
  >>> logits = glif_gate_logits({"block": {"neuron": p._asdict()}})
  >>> list(logits), [round(b, 2) for b in jax.nn.sigmoid(logits["block/neuron"]["beta"]).tolist()]
  (['block/neuron'], [0.65, 0.65])
  """
  if all(name in params for name in GLIFParams._fields):
    return {"": {g: params[g] for g in GATE_NAMES}}
  return {
    f"{key}/{path}".rstrip("/"): gates
    for key, value in params.items()
    if isinstance(value, Mapping)
    for path, gates in glif_gate_logits(value).items()
  }


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


class GLIFConstants(NamedTuple):
  """GLIF's choices that are not arrays; hashable, so a static argument of `jax.jit`.

  Attributes:
    gating: how the gates are used: ``"soft"`` (σ(raw)), ``"hard"`` (1[σ(raw) > 0.5]
      forward, straight-through gradient) or ``"static"`` (σ(raw), not trained).
    simplified: run GLIF_f (fixed gates; ``gating`` and the gate logits unused).
    detach_reset: stop gradients through the previous spike o_{t−1} in the update.
    surrogate: the spike function H; the default is GLIF's rectangle of width 1.
  """

  gating: str = "soft"
  simplified: bool = False
  detach_reset: bool = False
  surrogate: surrogates.Surrogate = surrogates.rectangle()

  def validated(self) -> GLIFConstants:
    """Returns these constants, or raises naming the field, what it must be and its value."""
    check_choice("gating", self.gating, GATINGS)
    if not isinstance(self.surrogate, surrogates.Surrogate):
      raise TypeError(f"surrogate must be a surrogates.Surrogate, got {self.surrogate!r}")
    return self


def glif_step(
  params: GLIFParams,
  state: GLIFState,
  x_t: tuple[jax.Array, jax.Array],
  *,
  constants: GLIFConstants = GLIFConstants(),
) -> tuple[jax.Array, GLIFState]:
  """One GLIF time step (the module docstring's update), differentiated by autodiff.

  Args:
    params: raw-logit parameters; ``params.conduct`` is ignored in favour of ``G_t``.
    state: `GLIFState` ``(u_{t−1}, o_{t−1})`` of ``[*batch, C]``.
    x_t: ``(X_t, G_t)``: the input current ``[*batch, C]`` and the raw conductance
      logit of this step, shaped as the other parameters, ``(C,)`` or ``()``
      (``params.conduct[t]``; `run` slices ``(x, params.conduct)`` so).
    constants: `GLIFConstants`.

  Returns:
    ``(o_t, GLIFState(u_t, o_t))``; o_t = H(u_t − V_th), H(x) = 1[x > 0].
  """
  if not (isinstance(x_t, tuple) and len(x_t) == 2):
    raise TypeError(
      f"x_t must be a pair (X_t, G_t) of GLIF's input and conductance, got {type(x_t).__name__}"
    )
  current, conduct_t = x_t
  current = _check_step(params, state, current, conduct_t)
  k = _common.check_constants(constants, GLIFConstants)
  c = glif_coefficients(
    params._replace(conduct=conduct_t), gating=k.gating, simplified=k.simplified
  )
  c = _common.cast_tree(c, current.dtype)
  u, o = state
  if k.detach_reset:
    o = jax.lax.stop_gradient(o)
  u = c.decay * u * (1 - c.hard_reset * o) - c.leak + c.gain * current - c.soft_reset * o
  o = k.surrogate(u - c.v_th)
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


def _check_step(p: GLIFParams, state: GLIFState, x_t: jax.Array, conduct_t: jax.Array) -> jax.Array:
  x_t = _common.check_step_input(x_t)
  _check_channel_params(p, x_t.shape[-1])
  if jnp.shape(conduct_t) != jnp.shape(p.alpha):
    raise ValueError(
      f"conduct_t must have shape {jnp.shape(p.alpha)} (one row of conduct, as the "
      f"parameters), got shape {jnp.shape(conduct_t)}"
    )
  _common.check_state(state, x_t.shape)
  return x_t


def _run(
  loop: Callable[..., tuple[jax.Array, GLIFState]],
  p: GLIFParams,
  x: jax.Array,
  state: GLIFState | None,
  constants: GLIFConstants,
  unroll: int | bool | None,
) -> tuple[jax.Array, GLIFState]:
  """Checks the arguments, then `run` or `run_trace` (``loop``) of `glif_step`."""
  constants = _common.check_constants(constants, GLIFConstants)
  x = _common.check_input(x)
  _check_params(p, x)
  if state is None:  # built inside the loop, so not kept for the backward pass
    initial = functools.partial(GLIFState.zeros, x.shape[1:], x.dtype)
  else:
    _common.check_state(state, x.shape[1:])
    initial = _common.cast_tree(state, x.dtype)
  step = functools.partial(glif_step, constants=constants)
  return loop(step, p, (x, p.conduct), initial, unroll=unroll)


def glif(
  p: GLIFParams,
  x: jax.Array,
  state: GLIFState | None = None,
  *,
  constants: GLIFConstants = GLIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, GLIFState]:
  """Runs a GLIF layer over time: `glif_step` at every step, through `glif_jax.neurons.run`.

  Args:
    p: raw-logit parameters (see `glif_params`); ``conduct`` has T rows.
    x: input current ``[T, *batch, C]`` (time-major, channel-last).
    state: state before the first step, ``GLIFState`` of ``[*batch, C]``; rest if None.
    constants: `GLIFConstants` (gating, GLIF_f, reset detach, surrogate).
    unroll: the time-loop policy of `glif_jax.neurons.run`.

  Returns:
    ``(spikes, final_state)`` with spikes shaped like ``x``.

  The backward pass keeps only ``x`` of each step (`glif_jax.neurons.run`); reverse mode
  only (`jax.grad`, `jax.vjp`): for `jax.jvp` scan `glif_step` with `jax.lax.scan`.
  """
  return _run(run, p, x, state, constants, unroll)


def glif_trace(
  p: GLIFParams,
  x: jax.Array,
  state: GLIFState | None = None,
  *,
  constants: GLIFConstants = GLIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, GLIFState]:
  """`glif`, returning the `GLIFState` after every step, each leaf ``[T, *batch, C]``.

  Returns:
    ``(spikes, trace)``; ``trace[-1]`` (as a pytree) is `glif`'s final state.
  """
  return _run(run_trace, p, x, state, constants, unroll)


def glif_f(
  p: GLIFParams,
  x: jax.Array,
  state: GLIFState | None = None,
  *,
  constants: GLIFConstants = GLIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, GLIFState]:
  """Runs GLIF_f, the simplified fixed-gate GLIF: `glif` with ``constants.simplified``.

  ``u_t = τ·u_{t−1}·(1 − o_{t−1}) − V_L + G_t·X_t − V_R·o_{t−1}``; the gate logits of
  ``p`` and ``constants.gating`` are unused. Arguments and returns as in `glif`.
  """
  return glif(p, x, state, constants=constants._replace(simplified=True), unroll=unroll)
