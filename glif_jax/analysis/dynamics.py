r"""Single-neuron dynamics, vmapped over parameter grids: f–I curves, gate sweeps, responses.

A *neuron function* is one of the pure functions of `glif_jax.neurons` that take
``(params, x)``: `glif`, `glif_f`, `klif`, `plif` (LIF with ``1/τ = sigmoid(w)``); its
constants are given as keyword arguments (``tau=3.0``, ``gating="hard"``) and its
``*_trace`` twin runs. Here every leaf of
``params`` carries a leading grid axis G (one layer-wise parameter set per grid point),
and each function runs all G sets in one `jax.vmap`'d call: no Python loop over a grid.

Inputs are time-major ``[T, N]``: N input traces run side by side as N channels of a
layer-wise neuron, so an f–I curve of N currents is one call.

Example:
  >>> import functools, jax.numpy as jnp
  >>> from glif_jax import neurons
  >>> from glif_jax.analysis import dynamics
  >>> currents = jnp.linspace(0.0, 3.0, 4)
  >>> rates = dynamics.fi_curve(neurons.plif, dynamics.plif_logits(jnp.array([2.0, 4.0])),
  ...                           currents, timesteps=100)
  >>> rates.shape
  (2, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glif_jax import neurons

NeuronFn = Callable[..., Any]


def _logit(p: Any) -> jax.Array:
  """Inverse sigmoid in float32; ±inf at 0 and 1, which `jax.nn.sigmoid` maps back exactly."""
  return jax.scipy.special.logit(jnp.asarray(p, jnp.float32))


def glif_logits(
  *,
  alpha: Any,
  beta: Any,
  gamma: Any,
  timesteps: int,
  tau: Any = None,
  v_th: Any = None,
  leak: Any = None,
  v_reset: Any = None,
  conduct: Any = None,
) -> neurons.GLIFParams:
  """Layer-wise GLIF parameters (raw logits) from values in [0, 1], for a grid of G points.

  Every argument is a value after the sigmoid (a gate of exactly 0 or 1 is allowed:
  its logit is ∓inf). Scalars and ``(G,)`` arrays broadcast to one grid axis G.

  Args:
    alpha, beta, gamma: the gates, scalars or ``(G,)``.
    timesteps: T, the rows of the conductance.
    tau, v_th, leak, v_reset: GLIF's τ, V_th, V_L and V_R (equations in the docs'
      explanation/neurons page); None: `neurons.glif_params`'s.
    conduct: G_t: a scalar (constant), ``(T,)`` (shared by the grid) or ``(G, T)``;
      None: `neurons.glif_params`'s.

  Returns:
    `GLIFParams` with leaves ``(G,)`` and ``conduct`` ``(G, T)`` (G = 1 if all scalar).
  """
  default = neurons.glif_params(None, timesteps, gate_init="fixed")
  given = {"tau": tau, "v_th": v_th, "leak": leak, "v_reset": v_reset}
  per_channel = {"alpha": _logit(alpha), "beta": _logit(beta), "gamma": _logit(gamma)}
  per_channel |= {k: getattr(default, k) if v is None else _logit(v) for k, v in given.items()}
  per_channel = {k: jnp.atleast_1d(v) for k, v in per_channel.items()}
  if conduct is not None and (
    jnp.ndim(conduct) > 2 or jnp.ndim(conduct) and jnp.shape(conduct)[-1] != timesteps
  ):
    raise ValueError(
      f"conduct must be a scalar, (T,) or (G, T) with T = {timesteps}, got shape {jnp.shape(conduct)}"
    )
  conduct = default.conduct if conduct is None else _logit(conduct)
  (grid,) = np.broadcast_shapes(
    *(v.shape for v in per_channel.values()), conduct.shape[:-1] or (1,)
  )
  leaves = {k: jnp.broadcast_to(v, (grid,)) for k, v in per_channel.items()}
  leaves["conduct"] = jnp.broadcast_to(conduct, (grid, timesteps))
  return neurons.GLIFParams(**leaves)


def plif_logits(tau: Any) -> neurons.PLIFParams:
  """`PLIFParams` (``1/τ = sigmoid(w)``) for a grid of time constants ``tau`` (> 1), ``(G,)``."""
  tau = jnp.atleast_1d(jnp.asarray(tau, jnp.float32))
  return neurons.PLIFParams(-jnp.log(tau - 1))


def constant_current(currents: Any, timesteps: int) -> jax.Array:
  """The input ``[T, N]`` holding current ``currents[n]`` in channel n at every step."""
  currents = jnp.atleast_1d(jnp.asarray(currents, jnp.float32))
  return jnp.broadcast_to(currents, (timesteps, currents.shape[0]))


def step_current(amplitudes: Any, timesteps: int, *, onset: int, offset: int | None = None):
  """A current step ``[T, N]``: ``amplitudes[n]`` for ``onset <= t < offset``, else 0."""
  t = jnp.arange(timesteps)[:, None]
  on = (t >= onset) & (t < (timesteps if offset is None else offset))
  return jnp.where(on, constant_current(amplitudes, timesteps), 0.0)


def poisson_spikes(key: jax.Array, rates: Any, timesteps: int) -> jax.Array:
  """A seeded Poisson (Bernoulli per step) spike train ``[T, N]`` with ``rates[n]`` per step."""
  rates = jnp.atleast_1d(jnp.asarray(rates, jnp.float32))
  return jax.random.bernoulli(key, rates, (timesteps, rates.shape[0])).astype(jnp.float32)


_TRACES = {  # neuron function -> (its trace twin, its constants)
  neurons.glif: (neurons.glif_trace, neurons.GLIFConstants),
  neurons.glif_f: (neurons.glif_trace, neurons.GLIFConstants),
  neurons.klif: (neurons.klif_trace, neurons.LIFConstants),
  neurons.plif: (neurons.plif_trace, neurons.LIFConstants),
}


def simulate(
  neuron: NeuronFn,
  params: Any,
  x: jax.Array,
  *,
  unroll: int | bool | None = 1,
  **constants: Any,
) -> tuple[jax.Array, Any]:
  """Runs ``neuron`` once per parameter set of a grid, all in one `jax.vmap`.

  Args:
    neuron: `neurons.glif`, `neurons.glif_f`, `neurons.klif` or `neurons.plif`; its
      ``*_trace`` twin runs.
    params: its parameters with a leading grid axis G on every leaf, layer-wise
      otherwise (e.g. from `glif_logits`, `plif_logits`, ``KLIFParams(k=(G,))``).
    x: input ``[T, *batch, N]``, shared by every grid point.
    unroll: the time-loop policy; it defaults to 1 here (a rolled time
      loop compiles fastest for one-off analysis runs).
    **constants: fields of the neuron's constants (``gating``, ``tau``, ``v_th``, ...:
      `neurons.GLIFConstants` or `neurons.LIFConstants`), or ``constants=`` one value.

  Returns:
    ``(spikes [G, T, *batch, N], trace)``: the trace is the neuron's state after every
    step, each leaf ``[G, T, *batch, N]``.
  """
  if neuron not in _TRACES:
    raise ValueError(
      f"neuron must be one of neurons.glif, glif_f, klif, plif, got {getattr(neuron, '__name__', neuron)!r}"
    )
  trace_fn, constants_type = _TRACES[neuron]
  given = constants.pop("constants", None)
  if given is not None and constants:
    raise TypeError(f"give constants= or its fields, not both: got {sorted(constants)} too")
  c = constants_type(**constants) if given is None else given
  if neuron is neurons.glif_f:
    c = c._replace(simplified=True)

  def one(p):
    return trace_fn(p, x, constants=c, unroll=unroll)

  return jax.vmap(one)(params)


def fi_curve(
  neuron: NeuronFn,
  params: Any,
  currents: Any,
  *,
  timesteps: int,
  skip: int = 0,
  **options,
) -> jax.Array:
  """Firing rate (spikes per step) against constant input current, for a parameter grid.

  Args:
    neuron, params, **options: as in `simulate` (its loop policy and constants).
    currents: N input currents.
    timesteps: T, the length of each run.
    skip: initial steps left out of the rate (the transient).

  Returns:
    ``rates [G, N]``: spikes in steps ``skip..T−1`` divided by ``T − skip``.
  """
  if not 0 <= skip < timesteps:
    raise ValueError(f"skip must be in [0, timesteps={timesteps}), got {skip}")
  spikes, _ = simulate(neuron, params, constant_current(currents, timesteps), **options)
  return jnp.mean(spikes[:, skip:], axis=1)


def lif_closed_form_rate(current: float, *, tau: float, v_th: float, timesteps: int) -> float:
  r"""Firing rate of LIF (decay_input, hard reset to 0, V_0 = 0) for a constant input X.

  From rest, ``V_n = X·(1 − (1 − 1/τ)^n)``; the neuron fires at the first n with
  ``V_n >= V_th`` and restarts from 0, so its inter-spike interval is
  ``n* = ceil(log(1 − V_th/X) / log(1 − 1/τ))`` (no spike if ``X <= V_th``) and a run
  of T steps holds ``floor(T / n*)`` spikes. Exact up to rounding at interval edges.

  Returns:
    ``floor(T / n*) / T`` (0 if the neuron never fires).
  """
  if current <= v_th:
    return 0.0
  decay = 1 - 1 / tau
  n = 1 if decay <= 0 else max(1, math.ceil(math.log(1 - v_th / current) / math.log(decay)))
  return (timesteps // n) / timesteps


class GateSweep(NamedTuple):
  """GLIF responses over a gate grid ``[A, B, Γ]`` (α, β, γ), one input trace.

  Attributes:
    spike_count: spikes in the run, ``[A, B, Γ]``.
    first_spike: step (0-based) of the first spike, NaN where none, ``[A, B, Γ]``.
    spikes: ``[A, B, Γ, T]``.
    u: membrane potential ``[A, B, Γ, T]``.
  """

  spike_count: jax.Array
  first_spike: jax.Array
  spikes: jax.Array
  u: jax.Array


def gate_sweep(
  alpha: Any,
  beta: Any,
  gamma: Any,
  x: Any,
  *,
  gating: str = "soft",
  **values,
) -> GateSweep:
  r"""Runs GLIF on every (α, β, γ) of a grid: the gates interpolate between neuron types.

  α blends exponential decay (α = 1: ``u·τ``) with linear leak (α = 0: ``u − V_L``);
  β scales the time-varying conductance in the input (β = 0: ``I = X``, β = 1:
  ``I = G_t·X``); γ blends hard reset (γ = 1: ``u`` multiplied by 0 after a spike) with
  soft reset (γ = 0: ``V_R`` subtracted).

  Args:
    alpha, beta, gamma: 1-D arrays of gate values in [0, 1] (A, B, Γ points).
    x: one input trace ``[T]``.
    gating: GLIF's gating mode.
    **values: other parameter values for `glif_logits` (tau, v_th, leak, v_reset,
      conduct), shared by the whole grid.

  Returns:
    `GateSweep`.
  """
  x = jnp.asarray(x, jnp.float32)
  if x.ndim != 1:
    raise ValueError(f"x must be one input trace [T], got shape {x.shape}")
  axes = [jnp.atleast_1d(jnp.asarray(g, jnp.float32)) for g in (alpha, beta, gamma)]
  shape = tuple(a.shape[0] for a in axes)
  a, b, g = (m.ravel() for m in jnp.meshgrid(*axes, indexing="ij"))
  params = glif_logits(alpha=a, beta=b, gamma=g, timesteps=x.shape[0], **values)
  spikes, trace = simulate(neurons.glif, params, x[:, None], gating=gating)
  spikes, u = spikes[..., 0].reshape(*shape, -1), trace.u[..., 0].reshape(*shape, -1)
  fired = spikes.any(axis=-1)
  first = jnp.where(fired, jnp.argmax(spikes > 0, axis=-1).astype(jnp.float32), jnp.nan)
  return GateSweep(spikes.sum(axis=-1), first, spikes, u)


class GLIFTerms(NamedTuple):
  r"""The terms of GLIF's update, ``u_t = decay − hard_reset − leak + input − soft_reset``.

  Each ``[T, *batch, C]``:

  - ``decay = (1 − α(1 − τ))·u_{t−1}``, the membrane carried over;
  - ``hard_reset = (1 − α(1 − τ))·u_{t−1}·γ·o_{t−1}``, the hard-reset share;
  - ``leak = (1 − α)·V_L``, the linear leak;
  - ``input = X_t·(1 − β(1 − G_t))``;
  - ``soft_reset = (1 − γ)·V_R·o_{t−1}``, the soft-reset share.
  """

  decay: jax.Array
  hard_reset: jax.Array
  leak: jax.Array
  input: jax.Array
  soft_reset: jax.Array


def glif_terms(
  p: neurons.GLIFParams, x: jax.Array, trace: neurons.GLIFState, *, gating: str = "soft"
) -> GLIFTerms:
  """Recomputes GLIF's update terms from a run's trace (from rest, ``u_0 = o_0 = 0``).

  Args:
    p: the run's raw-logit parameters (one set: ``(C,)`` or ``()`` leaves).
    x: its input ``[T, *batch, C]``.
    trace: the trace of ``glif_trace(p, x, constants=GLIFConstants(gating=gating))``.
    gating: the run's gating mode.

  Returns:
    `GLIFTerms`; their signed sum equals ``trace.u`` up to rounding.
  """
  c = neurons.glif_coefficients(p, gating=gating)
  u_prev, o_prev = (jnp.concatenate([jnp.zeros_like(a[:1]), a[:-1]]) for a in trace)
  decay = c.decay * u_prev
  gain = c.gain.reshape(c.gain.shape[:1] + (1,) * (x.ndim - c.gain.ndim) + c.gain.shape[1:])
  return GLIFTerms(
    decay=decay,
    hard_reset=decay * c.hard_reset * o_prev,
    leak=jnp.broadcast_to(c.leak, x.shape),
    input=x * gain,
    soft_reset=c.soft_reset * o_prev,
  )
