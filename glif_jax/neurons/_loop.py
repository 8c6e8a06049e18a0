"""The time loop every neuron runs in: `run`, `run_trace` and the loop beneath them.

A neuron is a step function ``step(params, state, x_t) -> (spike_t, new_state)``;
`run` applies it over the leading (time) axis of ``x`` and returns
``(spikes [T, ...], final_state)``, `run_trace` returns ``(spikes, states [T, ...])``.
``x`` may be a pytree of ``[T, ...]`` arrays (GLIF's conductance row travels beside its
input current), sliced at t for step t. ``params`` are closed over, so gradients reach
them as usual.

Loop policy, the same for every neuron (`loop_defaults`): up to `MAX_FULL_UNROLL` steps
the loop is unrolled into straight-line code, which XLA fuses across time steps, and the
backward pass stores each step's residuals; beyond, it is a rolled `jax.lax.scan` and
each step is rematerialised (`jax.checkpoint`) in the backward pass. What each choice
costs is measured in ``bench/`` (``bench/README.md``).

GLIF's hand-written backward pass (`glif_jax.neurons._glif_fast`) runs its forward and
reverse loops with the same policy through `loop`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

State = TypeVar("State")
Params = TypeVar("Params")
StepFn = Callable[[Params, State, Any], tuple[jax.Array, State]]

MAX_FULL_UNROLL = 32


def loop_defaults(
  length: int, unroll: int | bool | None, remat: bool | None
) -> tuple[int | bool, bool]:
  """The ``(unroll, remat)`` a loop of ``length`` steps runs with, ``None`` resolved.

  ``unroll=None``: ``True`` (straight-line code) up to `MAX_FULL_UNROLL` steps, else 1.
  ``remat=None``: ``False`` up to `MAX_FULL_UNROLL` steps, else ``True``.
  """
  long_loop = length > MAX_FULL_UNROLL
  return (
    1 if long_loop else True
  ) if unroll is None else unroll, long_loop if remat is None else remat


def _is_sequence(a: Any) -> bool:
  return isinstance(a, list)


def loop(
  body: Callable, carry: Any, xs: Any, *, unroll: int | bool, reverse: bool = False
) -> tuple[Any, Any]:
  """``carry, y_t = body(carry, x_t)`` for each step t of ``xs``; returns ``(carry, ys)``.

  ``xs`` is a pytree whose leaves are ``[T, ...]`` arrays or Python lists of T per-step
  arrays. With ``unroll=True`` the loop runs in Python and ``ys`` is a list with one
  pytree per step: each step's output stays its own buffer (XLA need not copy a slice
  of a stacked array before reducing it); otherwise it is `jax.lax.scan` with that
  ``unroll`` factor and ``ys`` is stacked. `stack` turns either into stacked arrays.
  """
  if unroll is not True:
    xs = jax.tree.map(lambda a: jnp.stack(a) if _is_sequence(a) else a, xs, is_leaf=_is_sequence)
    return jax.lax.scan(body, carry, xs, reverse=reverse, unroll=unroll)
  length = len(jax.tree.leaves(xs, is_leaf=_is_sequence)[0])
  ys = [None] * length
  for t in reversed(range(length)) if reverse else range(length):
    x_t = jax.tree.map(lambda a, t=t: a[t], xs, is_leaf=_is_sequence)
    carry, ys[t] = body(carry, x_t)
  return carry, ys


def stack(ys: Any) -> Any:
  """Stacks the per-step list of pytrees from `loop` (stacked outputs pass through)."""
  return jax.tree.map(lambda *a: jnp.stack(a), *ys) if isinstance(ys, list) else ys


def _time_steps(x: Any) -> int:
  leaves = jax.tree.leaves(x)
  if not leaves or any(jnp.ndim(a) < 1 for a in leaves):
    raise ValueError(f"x must be a pytree of [T, ...] arrays, got {x!r}")
  lengths = {jnp.shape(a)[0] for a in leaves}
  if len(lengths) != 1:
    raise ValueError(f"every leaf of x must have the same T, got leading sizes {sorted(lengths)}")
  return lengths.pop()


def _loop_steps(
  step: StepFn, params: Any, x: Any, state: Any, unroll, remat, with_states: bool
) -> tuple[Any, Any]:
  unroll, remat = loop_defaults(_time_steps(x), unroll, remat)

  def body(s, x_t):
    spike, s = step(params, s, x_t)
    return s, (spike, s) if with_states else spike

  if remat:
    body = jax.checkpoint(body, prevent_cse=False)
  final_state, out = loop(body, state, x, unroll=unroll)
  return final_state, stack(out)


def run(
  step: StepFn,
  params: Any,
  x: Any,
  state: State,
  *,
  unroll: int | bool | None = None,
  remat: bool | None = None,
) -> tuple[jax.Array, State]:
  """Runs a neuron step function over time.

  Args:
    step: one time step, ``step(params, state, x_t) -> (spike_t, new_state)``; bind
      its constants first (``functools.partial(lif_step, constants=...)``).
    params: the neuron's parameters (a pytree, or None), the same at every step.
    x: input ``[T, *batch, C]``, or a pytree of ``[T, ...]`` arrays sliced together.
    state: the state before the first step.
    unroll: ``True`` runs the loop as straight-line code, an int is `jax.lax.scan`'s
      unroll factor; ``None``: ``True`` for T <= 32, else 1.
    remat: checkpoint each step (`jax.checkpoint`): the backward pass recomputes a
      step's internals from its carry instead of storing them; ``None``: T > 32.

  Returns:
    ``(spikes, final_state)``: the spikes of every step stacked ``[T, ...]``.

  Examples:
    A neuron of one's own, an LIF whose threshold rises by 0.5 after each spike and
    decays back to 1, with a surrogate gradient:

    >>> import functools
    >>> from typing import NamedTuple
    >>> import jax, jax.numpy as jnp
    >>> from glif_jax import neurons, surrogates
    >>> class ALIFState(NamedTuple):
    ...   v: jax.Array    # membrane potential
    ...   th: jax.Array   # threshold
    >>> def alif_step(tau, state, x_t, spike_fn=surrogates.sigmoid(4.0)):
    ...   v = state.v + (x_t - state.v) / tau
    ...   spike = spike_fn(v - state.th, inclusive=True)
    ...   th = 1.0 + 0.9 * (state.th - 1.0) + 0.5 * spike
    ...   return spike, ALIFState(v * (1 - spike), th)
    >>> x = jnp.full((6, 1), 1.8)
    >>> state = ALIFState(jnp.zeros(1), jnp.ones(1))
    >>> spikes, final = neurons.run(alif_step, 2.0, x, state)
    >>> spikes[:, 0]
    Array([0., 1., 0., 0., 1., 0.], dtype=float32)
    >>> count = lambda tau: neurons.run(alif_step, tau, x, state)[0].sum()
    >>> bool(jax.grad(count)(2.0) < 0)  # a slower membrane fires less
    True
  """
  return _loop_steps(step, params, x, state, unroll, remat, False)[::-1]


def run_trace(
  step: StepFn,
  params: Any,
  x: Any,
  state: State,
  *,
  unroll: int | bool | None = None,
  remat: bool | None = None,
) -> tuple[jax.Array, State]:
  """`run`, returning the state after every step instead of the final one.

  Returns:
    ``(spikes, trace)``: spikes ``[T, ...]`` and the states stacked over time, each
    leaf ``[T, ...]`` (``trace[-1]`` is the final state). Arguments as in `run`.
  """
  _, (spikes, trace) = _loop_steps(step, params, x, state, unroll, remat, True)
  return spikes, trace
