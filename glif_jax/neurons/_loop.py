"""The time loop every neuron runs in: `run`, `run_trace` and their lean backward pass.

A neuron is a step function ``step(params, state, x_t) -> (spike_t, new_state)``;
`run` applies it over the leading (time) axis of ``x`` and returns
``(spikes [T, ...], final_state)``, `run_trace` returns ``(spikes, states [T, ...])``.
``x`` may be a pytree of ``[T, ...]`` arrays (GLIF's conductance row travels beside its
input current), sliced at t for step t. Gradients reach ``params``, ``x`` and ``state``.

What the backward pass keeps (the contract of this module): the forward pass saves only
its arguments, ``params``, the inputs ``x`` and the initial ``state`` (nothing of it when
``state`` is given as a function that builds it): per time step the bytes of ``x_t``,
nothing of the step's internals or states. The backward pass

1. runs the forward loop again from the saved ``state`` to rebuild the state before each
   step, once the backward pass reaches the layer (`after`: one layer's states at a time,
   freed when its backward ends);
2. walks back in time, calling `jax.vjp` of ``step`` at each saved state: the step's own
   internals live only within that step;
3. sums the parameters' gradient in the loop's carry (``params``-shaped, never stacked
   over time), and returns the inputs' gradient step by step.

This is one custom VJP for every step function, a user's own included, so what a neuron
keeps does not depend on what the compiler's rematerialisation does. Loop policy: up
to `MAX_FULL_UNROLL` steps both loops are unrolled into straight-line code, which XLA
fuses across time steps; beyond, they are rolled `jax.lax.scan` loops (measured in
``bench/``, see ``bench/README.md``). Forward-mode autodiff (`jax.jvp`) is not defined
for a custom VJP: differentiate a plain `jax.lax.scan` of the step where it is needed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

State = TypeVar("State")
Params = TypeVar("Params")
StepFn = Callable[[Params, State, Any], tuple[jax.Array, State]]

MAX_FULL_UNROLL = 32


def default_unroll(length: int, unroll: int | bool | None) -> int | bool:
  """``unroll``, or for ``None``: ``True`` (straight-line code) up to `MAX_FULL_UNROLL`
  steps, else 1 (a rolled `jax.lax.scan`)."""
  if unroll is None:
    return True if length <= MAX_FULL_UNROLL else 1
  return unroll


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


def after(tree: Any, signal: jax.Array) -> Any:
  """``tree``, unchanged, as values that exist only once ``signal`` does.

  XLA:CPU removes optimisation barriers before it orders the program, so a backward
  pass's recomputation from its residuals could run as soon as the residuals exist, early
  in the backward pass, and hold its output until its layer's turn. Adding a zero that
  depends on ``signal`` (the incoming cotangent) ties it to its turn. Values are kept
  bit for bit, except that a ``-0.0`` becomes ``+0.0``.
  """
  first = jnp.ravel(signal)[0]
  zero = jnp.minimum(0, jnp.isnan(first).astype(jnp.int8))  # 0, unknown to the compiler
  return jax.tree.map(lambda a: a + zero.astype(a.dtype), tree)


def _time_steps(x: Any) -> int:
  leaves = jax.tree.leaves(x)
  if not leaves or any(jnp.ndim(a) < 1 for a in leaves):
    raise ValueError(f"x must be a pytree of [T, ...] arrays, got {x!r}")
  lengths = {jnp.shape(a)[0] for a in leaves}
  if len(lengths) != 1:
    raise ValueError(f"every leaf of x must have the same T, got leading sizes {sorted(lengths)}")
  length = lengths.pop()
  if length < 1:
    raise ValueError(f"x must hold at least one time step, got T = {length}")
  return length


def _forward(step, params, x, state, with_trace, unroll):
  """``(spikes, final_state or trace)`` of running ``step`` over ``x``."""

  def body(s, x_t):
    spike, s = step(params, s, x_t)
    return s, (spike, s) if with_trace else spike

  final_state, out = loop(body, state, x, unroll=unroll)
  return stack(out) if with_trace else (stack(out), final_state)


def _initial(state, init):
  return init() if state is None else state


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 5, 6))
def _run(step, init, params, x, state, with_trace, unroll):
  return _forward(step, params, x, _initial(state, init), with_trace, unroll)


def _run_fwd(step, init, params, x, state, with_trace, unroll):
  out = _forward(step, params, x, _initial(state, init), with_trace, unroll)
  return out, (params, x, state)


def _run_bwd(step, init, with_trace, unroll, residuals, cotangents):
  """Backpropagation through time with `jax.vjp` of ``step``, one step at a time."""
  # The barrier keeps XLA from merging the rebuilt states with the forward pass's (which
  # would keep those alive until now, the memory this pass exists to save).
  params, x, given_state = jax.lax.optimization_barrier(residuals)
  ct_spikes, ct_state = cotangents
  x = after(x, ct_spikes)
  state = _initial(given_state, init)
  zeros = functools.partial(jax.tree.map, jnp.zeros_like)
  ct_trace = ct_state if with_trace else None

  def back(carry, inputs):
    ds, dparams = carry
    state_before, x_t, ct_spike, ct_state_t = inputs
    if ct_state_t is not None:
      ds = jax.tree.map(jnp.add, ds, ct_state_t)
    _, step_vjp = jax.vjp(step, params, state_before, x_t)
    dparams_t, ds, dx_t = step_vjp((ct_spike, ds))
    return (ds, jax.tree.map(jnp.add, dparams, dparams_t)), dx_t

  # The state before each step, rebuilt from the initial one.
  states = loop(lambda s, x_t: (step(params, s, x_t)[1], s), state, x, unroll=unroll)[1]
  ds_last = zeros(state) if with_trace else ct_state
  (dstate, dparams), dx = loop(
    back, (ds_last, zeros(params)), (states, x, ct_spikes, ct_trace), unroll=unroll, reverse=True
  )
  return dparams, stack(dx), None if given_state is None else dstate


_run.defvjp(_run_fwd, _run_bwd)


def _call(step, params, x, state, with_trace, unroll):
  """`_run` with ``state`` a pytree, or a function that builds it (then not kept)."""
  init, state = (state, None) if callable(state) else (None, state)
  return _run(step, init, params, x, state, with_trace, default_unroll(_time_steps(x), unroll))


def run(
  step: StepFn,
  params: Any,
  x: Any,
  state: State | Callable[[], State],
  *,
  unroll: int | bool | None = None,
) -> tuple[jax.Array, State]:
  """Runs a neuron step function over time, with the lean backward pass of this module.

  Args:
    step: one time step, ``step(params, state, x_t) -> (spike_t, new_state)``; bind
      its constants first (``functools.partial(lif_step, constants=...)``).
    params: the neuron's parameters (a pytree, or None), the same at every step.
    x: input ``[T, *batch, C]``, or a pytree of ``[T, ...]`` arrays sliced together.
    state: the state before the first step, or a function of no arguments that builds
      it (a rest state: then the backward pass keeps nothing of it).
    unroll: ``True`` runs the loops as straight-line code, an int is `jax.lax.scan`'s
      unroll factor; ``None``: ``True`` for T <= 32, else 1.

  Returns:
    ``(spikes, final_state)``: the spikes of every step stacked ``[T, ...]``.

  The backward pass keeps only ``params``, ``x`` and ``state`` (the module docstring).

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
  return _call(step, params, x, state, False, unroll)


def run_trace(
  step: StepFn,
  params: Any,
  x: Any,
  state: State | Callable[[], State],
  *,
  unroll: int | bool | None = None,
) -> tuple[jax.Array, State]:
  """`run`, returning the state after every step instead of the final one.

  Returns:
    ``(spikes, trace)``: spikes ``[T, ...]`` and the states stacked over time, each
    leaf ``[T, ...]`` (``trace[-1]`` is the final state). Arguments as in `run`.
  """
  return _call(step, params, x, state, True, unroll)
