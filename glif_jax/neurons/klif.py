r"""KLIF: LIF with a learnable scale ``k`` of the membrane (Jiang & Zhang, ICASSP 2023).

As SpikingJelly's ``KLIFNode``, for t = 1..T (V_0 = V_reset, or 0 with soft reset)::

    H_t = V_{t−1} + (X_t − (V_{t−1} − V_reset)) / τ      (decay_input=False:
                                                           H_t = V_{t−1} − (V_{t−1} − V_reset)/τ + X_t)
    F_t = ReLU(k · H_t)
    S_t = Θ(F_t − V_th),     Θ(x) = 1[x >= 0]
    V_t = F_t·(1 − S_t) + V_reset·S_t                    (hard reset)
    V_t = F_t − V_th·S_t                                 (soft reset, v_reset=None)

With ``scale_reset`` the kept potential is divided by k (``F_t/k`` before a hard
reset, the soft-reset result after). The default surrogate is the sigmoid with
α = 4; by the chain rule through F, k scales the surrogate's slope. `klif_step` is
this update; its constants are `glif_jax.neurons.LIFConstants`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from glif_jax.neurons import _common
from glif_jax.neurons._loop import run, run_trace
from glif_jax.neurons.lif import LIFConstants, LIFState, charge, initial_state

KLIFState = LIFState


class KLIFParams(NamedTuple):
  """KLIF's scale ``k``, used as is (not a logit); shape ``()`` or ``(C,)``."""

  k: jax.Array


def klif_params(k: float = 1.0, channels: int | None = None, *, dtype=jnp.float32) -> KLIFParams:
  """KLIF parameters, ``k = 1`` by default; layer-wise (shape ``()``) unless ``channels``."""
  shape = () if channels is None else (channels,)
  return KLIFParams(jnp.full(shape, k, dtype))


def _check_params(p: KLIFParams, channels: int) -> None:
  if not isinstance(p, KLIFParams):
    raise TypeError(f"params must be KLIFParams, got {type(p).__name__}")
  _common.check_channel_param("k", p.k, channels)


def klif_step(
  params: KLIFParams,
  state: KLIFState,
  x_t: jax.Array,
  *,
  constants: LIFConstants = LIFConstants(),
) -> tuple[jax.Array, KLIFState]:
  """One KLIF time step, the module docstring's update.

  Args:
    params: `KLIFParams`.
    state: `KLIFState` of ``[*batch, C]``.
    x_t: input current of this step, ``[*batch, C]``.
    constants: `LIFConstants` (τ, V_th, V_reset, decay_input, scale_reset, ...).

  Returns:
    ``(S_t, KLIFState(V_t))``.
  """
  c = _common.check_constants(constants, LIFConstants)
  x_t = _common.check_step_input(x_t)
  _check_params(params, x_t.shape[-1])
  _common.check_state(state, x_t.shape)
  k = jnp.asarray(params.k).astype(x_t.dtype)
  f = jax.nn.relu(k * charge(state.v, x_t, 1.0 / c.tau, c))
  spike = c.surrogate(f - c.v_th, inclusive=True)
  s = jax.lax.stop_gradient(spike) if c.detach_reset else spike
  if c.v_reset is None:
    v = f - c.v_th * s
    v = v / k if c.scale_reset else v
  else:
    kept = f / k if c.scale_reset else f
    v = kept * (1 - s) + c.v_reset * s
  return spike, KLIFState(v)


def _run(loop, p, x, state, constants, unroll):
  """Checks the arguments, then `run` or `run_trace` (``loop``) of `klif_step`."""
  constants = _common.check_constants(constants, LIFConstants)
  x = _common.check_input(x)
  _check_params(p, x.shape[-1])
  state = initial_state(state, x, constants)
  step = functools.partial(klif_step, constants=constants)
  return loop(step, p, x, state, unroll=unroll)


def klif(
  p: KLIFParams,
  x: jax.Array,
  state: KLIFState | None = None,
  *,
  constants: LIFConstants = LIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, KLIFState]:
  """Runs a KLIF layer over time: `klif_step` at every step.

  Args:
    p: `KLIFParams`.
    x: input current ``[T, *batch, C]``.
    state: `KLIFState` of ``[*batch, C]``; ``V = v_reset`` (or 0) if None.
    constants: `LIFConstants`.
    unroll: the time-loop policy of `glif_jax.neurons.run`.

  Returns:
    ``(spikes, final_state)``.
  """
  return _run(run, p, x, state, constants, unroll)


def klif_trace(
  p: KLIFParams,
  x: jax.Array,
  state: KLIFState | None = None,
  *,
  constants: LIFConstants = LIFConstants(),
  unroll: int | bool | None = None,
) -> tuple[jax.Array, KLIFState]:
  """`klif`, returning ``(spikes, trace)``: the `KLIFState` after every step, ``[T, ...]``."""
  return _run(run_trace, p, x, state, constants, unroll)
