"""Shared pieces of the neuron functions: input checks and the time loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

State = TypeVar("State")
MAX_FULL_UNROLL = 32
StepFn = Callable[[State, Any], tuple[jax.Array, State]]


def logit(p: float) -> float:
  """Inverse sigmoid of a probability ``p`` in (0, 1)."""
  return float(np.log(p) - np.log1p(-p))


def check_input(x: Any, name: str = "x") -> jax.Array:
  """Returns ``x`` as a floating array of shape ``[T, *batch, C]`` or raises."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
  if x.ndim < 2:
    raise ValueError(
      f"{name} must have shape [T, *batch, C] (rank >= 2, time-major), got shape {x.shape}"
    )
  return x


def check_step_input(x_t: Any, name: str = "x_t") -> jax.Array:
  """Returns ``x_t`` as a floating array of shape ``[*batch, C]`` (one time step) or raises."""
  x_t = jnp.asarray(x_t)
  if not jnp.issubdtype(x_t.dtype, jnp.floating):
    raise TypeError(f"{name} must be a floating-point array, got dtype {x_t.dtype}")
  if x_t.ndim < 1:
    raise ValueError(f"{name} must have shape [*batch, C] (rank >= 1), got shape {x_t.shape}")
  return x_t


def check_tau(tau: float) -> None:
  """Raises ``ValueError`` unless the membrane time constant ``tau`` is > 0."""
  if not tau > 0:
    raise ValueError(f"tau must be > 0, got {tau!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
  """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_channel_param(name: str, value: jax.Array, channels: int) -> None:
  """Checks that a per-channel parameter has shape () (layer-wise) or (channels,)."""
  shape = jnp.shape(value)
  if shape not in ((), (channels,)):
    raise ValueError(
      f"parameter {name} must have shape () or ({channels},) to match the input's "
      f"{channels} channels, got shape {shape}"
    )


def check_state(state: Any, expected_shape: tuple[int, ...]) -> None:
  """Checks that every leaf of ``state`` has shape ``expected_shape``."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if jnp.shape(leaf) != expected_shape:
      raise ValueError(
        f"state{jax.tree_util.keystr(path)} must have the shape of one time step of the "
        f"input, {expected_shape}, got {jnp.shape(leaf)}"
      )


def cast_tree(tree: Any, dtype: Any) -> Any:
  """Casts every leaf of ``tree`` to ``dtype``."""
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def time_expand(a: jax.Array, x_ndim: int) -> jax.Array:
  """Reshapes a ``(T,)`` or ``(T, C)`` array to broadcast against ``[T, *batch, C]``."""
  middle = (1,) * (x_ndim - a.ndim)
  return a.reshape(a.shape[:1] + middle + a.shape[1:])


def loop_defaults(length: int, unroll: int | bool | None, remat: bool | None):
  """The ``(unroll, remat)`` a time loop of ``length`` steps runs with, ``None`` resolved.

  Up to `MAX_FULL_UNROLL` steps the loop is fully unrolled (XLA then fuses across time
  steps: ~5x faster on CPU for T = 6) and stores its residuals; beyond, it is rolled
  (unrolled long loops compile slowly and run slower) and recomputes instead of storing.
  """
  long_loop = length > MAX_FULL_UNROLL
  return (
    1 if long_loop else True
  ) if unroll is None else unroll, long_loop if remat is None else remat


def time_loop(step: Callable, carry: Any, xs: Sequence[Any], *, unroll: int | bool, reverse=False):
  """``carry, ys = step(carry, [x[t] for x in xs])`` for each step t of the sequences ``xs``.

  With ``unroll=True`` the loop runs in Python and ``ys`` is a list with one pytree per
  step: each step's output stays its own buffer (XLA need not copy a slice of a stacked
  array before reducing it); otherwise it is `jax.lax.scan` and ``ys`` is stacked. The
  sequences may be arrays ``[T, ...]`` or such lists.
  """
  if unroll is not True:
    return jax.lax.scan(
      lambda c, x: step(c, list(x)), carry, list(xs), reverse=reverse, unroll=unroll
    )
  length = len(xs[0])
  ys = [None] * length
  for t in reversed(range(length)) if reverse else range(length):
    carry, ys[t] = step(carry, [x[t] for x in xs])
  return carry, ys


def stack(ys: Any) -> Any:
  """Stacks a list of per-step pytrees from `time_loop` (stacked outputs pass through)."""
  return jax.tree.map(lambda *a: jnp.stack(a), *ys) if isinstance(ys, list) else ys


def scan_time(
  step: StepFn,
  state: State,
  xs: Any,
  *,
  unroll: int | bool | None = None,
  remat: bool | None = None,
  return_trace: bool = False,
):
  """Runs ``step(state, x_t) -> (spike_t, state)`` over the leading axis of ``xs``.

  Args:
    step: one time step.
    state: the state before the first step.
    xs: a pytree whose leaves have a leading time axis T.
    unroll: passed to `jax.lax.scan`; ``None``: see `loop_defaults`.
    remat: checkpoint each step (`jax.checkpoint`): the backward pass recomputes
      a step's internals from its carry instead of storing them, so memory over
      long T holds only the states; ``None``: see `loop_defaults`.
    return_trace: also return the state after every step, stacked over time.

  Returns:
    ``(spikes [T, ...], final_state)``, plus the trace if ``return_trace``.
  """

  def body(carry, x_t):
    spike, new_state = step(carry, x_t)
    return new_state, (spike, new_state) if return_trace else spike

  unroll, remat = loop_defaults(jax.tree.leaves(xs)[0].shape[0], unroll, remat)
  if remat:
    body = jax.checkpoint(body, prevent_cse=False)
  final_state, out = jax.lax.scan(body, state, xs, unroll=unroll)
  if return_trace:
    spikes, trace = out
    return spikes, final_state, trace
  return out, final_state
