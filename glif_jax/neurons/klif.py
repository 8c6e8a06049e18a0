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
α = 4; by the chain rule through F, k scales the surrogate's slope.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from glif_jax import surrogates
from glif_jax.neurons import _common
from glif_jax.neurons.lif import LIFResult, LIFState, lif_update, run_lif

KLIFState = LIFState


class KLIFParams(NamedTuple):
  """KLIF's scale ``k``, used as is (not a logit); shape ``()`` or ``(C,)``."""

  k: jax.Array


def klif_params(k: float = 1.0, channels: int | None = None, *, dtype=jnp.float32) -> KLIFParams:
  """KLIF parameters, ``k = 1`` by default; layer-wise (shape ``()``) unless ``channels``."""
  shape = () if channels is None else (channels,)
  return KLIFParams(jnp.full(shape, k, dtype))


def _check_params(p: KLIFParams) -> None:
  if not isinstance(p, KLIFParams):
    raise TypeError(f"params must be KLIFParams, got {type(p).__name__}")


def klif(
  p: KLIFParams,
  x: jax.Array,
  state: KLIFState | None = None,
  *,
  tau: float = 2.0,
  v_th: float = 1.0,
  v_reset: float | None = 0.0,
  decay_input: bool = True,
  scale_reset: bool = False,
  surrogate: surrogates.Surrogate = surrogates.sigmoid(4.0),
  detach_reset: bool = False,
  unroll: int | bool | None = None,
  remat: bool | None = None,
  return_trace: bool = False,
) -> LIFResult:
  """Runs a KLIF layer over time.

  Args:
    p: `KLIFParams`.
    x: input current ``[T, *batch, C]``.
    state: `KLIFState` of ``[*batch, C]``; ``V = v_reset`` (or 0) if None.
    tau: membrane time constant (> 0).
    v_th: threshold; fires when ``F − v_th >= 0``.
    v_reset: reset potential (hard reset), or ``None`` for soft reset.
    decay_input: whether the input is divided by τ too.
    scale_reset: divide the kept potential by k.
    surrogate: spike function (default sigmoid, α = 4).
    detach_reset, unroll, remat, return_trace: as in `glif_jax.neurons.glif`.

  Returns:
    ``(spikes, final_state)`` (and the stacked state trace if ``return_trace``).
  """
  _check_params(p)
  _common.check_tau(tau)
  x = _common.check_input(x)
  _common.check_channel_param("k", p.k, x.shape[-1])
  return run_lif(
    x,
    state,
    inv_tau=1.0 / tau,
    k=jnp.asarray(p.k).astype(x.dtype),
    v_th=v_th,
    v_reset=v_reset,
    decay_input=decay_input,
    scale_reset=scale_reset,
    surrogate=surrogate,
    detach_reset=detach_reset,
    unroll=unroll,
    remat=remat,
    return_trace=return_trace,
  )


def klif_step(
  p: KLIFParams,
  state: KLIFState,
  x_t: jax.Array,
  *,
  tau: float = 2.0,
  v_th: float = 1.0,
  v_reset: float | None = 0.0,
  decay_input: bool = True,
  scale_reset: bool = False,
  surrogate: surrogates.Surrogate = surrogates.sigmoid(4.0),
  detach_reset: bool = False,
) -> tuple[jax.Array, KLIFState]:
  """One KLIF time step: ``(spike_t, new_state)``; arguments as in `klif`."""
  _check_params(p)
  _common.check_tau(tau)
  x_t = _common.check_step_input(x_t)
  _common.check_channel_param("k", p.k, x_t.shape[-1])
  _common.check_state(state, x_t.shape)
  spike, v = lif_update(
    state.v,
    x_t,
    inv_tau=1.0 / tau,
    k=jnp.asarray(p.k).astype(x_t.dtype),
    v_th=v_th,
    v_reset=v_reset,
    decay_input=decay_input,
    scale_reset=scale_reset,
    surrogate=surrogate,
    detach_reset=detach_reset,
  )
  return spike, KLIFState(v)
