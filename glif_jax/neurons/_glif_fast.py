r"""GLIF over time with a hand-written backward pass: the fast path of `glif` and `glif_f`.

Contract: ``glif_scan`` equals autodiff of scanning `glif_jax.neurons.glif_step` (or its
GLIF_f form) over time, in its outputs and in every gradient — to parameters, input,
initial state and the membrane trace. ``tests/neurons/test_glif_fast.py`` checks this; nothing
else about GLIF lives here (the update itself is `glif_step`'s, in the terms of
`glif_jax.neurons.glif_coefficients`)::

    u_t = decay·u_{t−1}·(1 − hard_reset·o_{t−1}) − leak + gain_t·X_t − soft_reset·o_{t−1}
    o_t = H(u_t − V_th)

Why it exists: autodiff of the scanned step stores every intermediate of every step and
reduces the parameter gradients over the batch at the end. Here the forward pass keeps
one membrane potential per step (none with ``remat``: it runs again in the backward
pass), and the reverse loop reduces the parameter gradients over the batch step by step
(`_Sums`), so the backward pass reads each ``[*batch, C]`` buffer once. Both loops follow
the time-loop policy of `glif_jax.neurons.run` (`_loop.loop_defaults`).

This module imports no GLIF type: it builds its results with ``_replace`` on the
coefficients and state it is given, so `glif_jax.neurons.glif` can import it.
Forward mode (`jax.jvp`) is not defined for it.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from glif_jax import surrogates
from glif_jax.neurons import _common, _loop


class _Sums(NamedTuple):
  """Per-step sums over the batch from which `_run_bwd` builds the parameter gradients."""

  du_u: jax.Array  # Σ δu_{t+1}·u_t
  du_o_u: jax.Array  # Σ δu_{t+1}·o_t·u_t
  du_o: jax.Array  # Σ δu_{t+1}·o_t
  du: jax.Array  # Σ δu_t


def _update_vjp(c, du_next, u, o, total, detach_reset):
  r"""Backpropagates ``δu_{t+1} = ∂L/∂u_{t+1}`` through one update to ``(u_t, o_t)``.

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


def _forward(c, x: jax.Array, state, unroll) -> list | jax.Array:
  """The membrane potential after every step: ``[T, *batch, C]``, a list if unrolled."""
  if state is None:  # rest, a constant XLA folds into the first step
    state = (jnp.zeros(x.shape[1:], x.dtype), jnp.zeros(x.shape[1:], x.dtype))

  def step(s, inputs):
    (u, o), (x_t, gain_t) = s, inputs
    u = c.decay * u * (1 - c.hard_reset * o) - c.leak + gain_t * x_t - c.soft_reset * o
    o = surrogates.heaviside(u - c.v_th)
    return (u, o), u

  return _loop.loop(step, tuple(state), (x, _common.time_expand(c.gain, x.ndim)), unroll=unroll)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _run(c, x, state, surrogate, detach_reset, unroll, remat):
  """``(spikes, u)``, each ``[T, *batch, C]``, from ``state`` (None: rest)."""
  u = _loop.stack(_forward(c, x, state, unroll))
  return surrogates.heaviside(u - c.v_th), u


def _run_fwd(c, x, state, surrogate, detach_reset, unroll, remat):
  us = _forward(c, x, state, unroll)
  u = _loop.stack(us)
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

  du_1, per_step = _loop.loop(
    step, jnp.zeros(x.shape[1:], x.dtype), (us, ct_spikes, ct_u), unroll=unroll, reverse=True
  )
  du, sums = _loop.stack(per_step)
  first_du, sums = sums.du[0], _Sums(*(jnp.sum(s, 0) for s in sums))  # over time
  if state is None:  # from rest: u_0 = o_0 = 0 add nothing
    state_grads = None
    du_u, du_o_u, du_o = sums[:3]
  else:
    du_0, do_0, sums_0 = _update_vjp(c, du_1, state.u, state.o, total, detach_reset)
    state_grads = state._replace(u=du_0, o=do_0)
    du_u, du_o_u, du_o = (s + s0 for s, s0 in zip(sums, sums_0))
  # Σ_t ∂L/∂o_t·H'(u_t − V_th) = Σ_t δu_t − decay·Σ_t (δu_{t+1} − hard_reset·δu_{t+1}·o_t)
  #   − Σ_t ct_u_t, with Σ_t δu_{t+1} = Σ_t δu_t − Σ δu_1 (the loop's δu_{t+1}·o_t sums)
  spike_total = sums.du - c.decay * (sums.du - first_du - c.hard_reset * sums.du_o)
  spike_total -= jnp.sum(ct_u, axis=tuple(range(x.ndim - per_channel)))
  grads = c._replace(
    decay=du_u - c.hard_reset * du_o_u,
    hard_reset=-c.decay * du_o_u,
    leak=-sums.du,
    soft_reset=-du_o,
    gain=jnp.sum(du * x, axis=tuple(range(1, x.ndim - per_channel))),
    v_th=-spike_total,
  )
  return grads, du * _common.time_expand(c.gain, x.ndim), state_grads


_run.defvjp(_run_fwd, _run_bwd)


def glif_scan(
  c: Any,
  x: jax.Array,
  state: Any,
  *,
  surrogate: surrogates.Surrogate,
  detach_reset: bool,
  unroll: int | bool | None,
  remat: bool | None,
) -> tuple[jax.Array, jax.Array]:
  """GLIF's update over time from coefficients, with the hand-written backward pass.

  Args:
    c: `GLIFCoefficients` in ``x``'s dtype; ``c.gain`` has a leading time axis T.
    x: input current ``[T, *batch, C]``.
    state: `GLIFState` of ``[*batch, C]`` in ``x``'s dtype, or None for rest
      (``u_0 = o_0 = 0``, folded into the first step).
    surrogate: its ``grad`` is H' in the backward pass.
    detach_reset: no gradient through ``o_{t−1}`` in the update.
    unroll, remat: as in `glif_jax.neurons.run`; remat recomputes the membrane
      potentials in the backward pass instead of storing them.

  Returns:
    ``(spikes, u)``, each ``[T, *batch, C]``.
  """
  unroll, remat = _loop.loop_defaults(x.shape[0], unroll, remat)
  return _run(c, x, state, surrogate, detach_reset, unroll, remat)
