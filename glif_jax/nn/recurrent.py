r"""Recurrent spiking layers: any neuron step with its own spikes fed back.

A recurrent layer of C neurons sends the spikes of step t − 1 back into its input at t::

    I_t = W_in·x_t + s_{t−1}·W_rec + b            (b: optional per-channel bias)
    s_t, state_t = step(neuron_params, state_{t−1}, I_t)

``W_rec`` is ``[C, C]``: row i holds neuron i's weights onto every neuron (the layout of a
Linear kernel, ``[in, out]``). `recurrent_step` wraps any neuron step
``step(params, state, x_t) -> (spike_t, new_state)`` (`glif_jax.neurons.glif_step`,
``klif_step``, ``lif_step`` or one's own) into the recurrent step, whose parameters are
`RecurrentParams` and whose state is `RecurrentState` (the neuron's state and the
previous spikes). It runs in `glif_jax.neurons.run`, the loop and backward pass of every
neuron, so the gradients of ``W_rec`` and ``b`` are summed over time as the neuron's own
parameters' are, and the state kept per step is the neuron's state and one spike array.

`Recurrent` is the Flax NNX layer: ``W_in x`` for every step is one matrix product on
``[T, *batch, F]``, outside the loop; only the feedback runs inside it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import neurons
from glif_jax.nn.neurons import GLIF, KLIF, LIF, PLIF, SpikingNeuron

StepFn = Callable[[Any, Any, Any], tuple[jax.Array, Any]]
LECUN_NORMAL = nnx.initializers.lecun_normal()  # the weights' default initialiser, as nnx.Linear's


class RecurrentParams(NamedTuple):
  """The parameters of `recurrent_step`.

  Attributes:
    neuron: the neuron step's own parameters (`glif_jax.neurons.GLIFParams`, ...; None
      for LIF).
    w_rec: recurrent weights ``[C, C]``; row i holds neuron i's weights onto every neuron.
    bias: per-channel bias ``[C]`` added to the current at every step, or None.
  """

  neuron: Any
  w_rec: jax.Array
  bias: jax.Array | None = None


class RecurrentState(NamedTuple):
  """The state of `recurrent_step`: the neuron's state and its spikes ``s_{t−1}``
  ``[*batch, C]``."""

  neuron: Any
  spikes: jax.Array


def _current(x_t: Any) -> jax.Array:
  """The input current of a neuron's ``x_t``: the array, or a tuple's first element."""
  return x_t[0] if isinstance(x_t, tuple) else x_t


def _with_current(x_t: Any, current: jax.Array) -> Any:
  return (current, *x_t[1:]) if isinstance(x_t, tuple) else current


def _check(params: RecurrentParams, state: RecurrentState, current: jax.Array) -> None:
  shape = jnp.shape(current)
  if not shape:
    raise ValueError(f"the input current of one step must be [*batch, C], got shape {shape}")
  channels = shape[-1]
  if jnp.shape(state.spikes) != shape:
    raise ValueError(
      f"state.spikes must have the shape of one step of the input current, {shape}, "
      f"got {jnp.shape(state.spikes)}"
    )
  if jnp.shape(params.w_rec) != (channels, channels):
    raise ValueError(
      f"w_rec must have shape {(channels, channels)} for the current's {channels} channels, "
      f"got {jnp.shape(params.w_rec)}"
    )
  if params.bias is not None and jnp.shape(params.bias) != (channels,):
    raise ValueError(
      f"bias must have shape {(channels,)} for the current's {channels} channels, "
      f"got {jnp.shape(params.bias)}"
    )


def recurrent_step(step: StepFn) -> Callable[..., tuple[jax.Array, RecurrentState]]:
  """The recurrent version of a neuron step: its spikes of step t − 1 join its input at t.

  Args:
    step: ``step(params, state, x_t) -> (spike_t, new_state)`` with its constants bound
      (``functools.partial(lif_step, constants=...)``). ``x_t`` is the step's own input;
      where it is a tuple, its first element is the input current (GLIF's ``(X_t, G_t)``).

  Returns:
    ``recurrent(params, state, x_t) -> (spike_t, new_state)`` with `RecurrentParams` and
    `RecurrentState`; its current is ``X_t + s_{t−1}·W_rec + b``. Run it with
    `glif_jax.neurons.run`.

  Raises:
    ValueError: (when called) ``w_rec``, ``bias`` or ``state.spikes`` do not fit the
      current's ``[*batch, C]``, naming the shape expected and the one given.

  Example:
    >>> import functools
    >>> import jax.numpy as jnp
    >>> from glif_jax import neurons
    >>> from glif_jax.nn import RecurrentParams, RecurrentState, recurrent_step
    >>> step = recurrent_step(functools.partial(neurons.lif_step, constants=neurons.LIFConstants()))
    >>> params = RecurrentParams(None, w_rec=jnp.array([[0.0, 4.0], [0.0, 0.0]]))
    >>> state = RecurrentState(neurons.LIFState.zeros((2,)), spikes=jnp.zeros(2))
    >>> x = jnp.array([[2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # neuron 0 fires, then 1
    >>> neurons.run(step, params, x, state)[0]
    Array([[1., 0.],
           [0., 1.],
           [0., 0.]], dtype=float32)
  """

  def recurrent(
    params: RecurrentParams, state: RecurrentState, x_t: Any
  ) -> tuple[jax.Array, RecurrentState]:
    current = jnp.asarray(_current(x_t))
    _check(params, state, current)
    feedback = state.spikes.astype(current.dtype) @ params.w_rec.astype(current.dtype)
    if params.bias is not None:
      feedback = feedback + params.bias.astype(current.dtype)
    spike, neuron_state = step(params.neuron, state.neuron, _with_current(x_t, current + feedback))
    return spike, RecurrentState(neuron_state, spike.astype(state.spikes.dtype))

  return recurrent


class _NeuronLoop(NamedTuple):
  """What `neurons.run` needs of a neuron module: its step, parameters, per-step input,
  initial state for a current ``[T, *batch, C]``, and its loop policy."""

  step: StepFn
  params: Any
  x: Any
  state: Any
  unroll: int | bool | None


def _glif_loop(neuron: GLIF, current: jax.Array) -> _NeuronLoop:
  p = neuron.params
  rows = jnp.shape(p.conduct)[0]
  if rows != current.shape[0]:
    raise ValueError(
      f"this GLIF was built for T = {rows} steps (its conductance rows), got an input of "
      f"T = {current.shape[0]} steps"
    )
  state = neurons.GLIFState.zeros(current.shape[1:], current.dtype)
  step = functools.partial(neurons.glif_step, constants=neuron.constants)
  return _NeuronLoop(step, p, (current, p.conduct), state, neuron.unroll)


def _lif_family_loop(step: Callable[..., Any]) -> Callable[[Any, jax.Array], _NeuronLoop]:
  def make(neuron: Any, current: jax.Array) -> _NeuronLoop:
    v_rest = neuron.constants.v_reset or 0.0  # V_reset, or 0 with soft reset (None)
    state = neurons.LIFState(jnp.full(current.shape[1:], v_rest, current.dtype))
    return _NeuronLoop(
      functools.partial(step, constants=neuron.constants),
      neuron.params,
      current,
      state,
      neuron.unroll,
    )

  return make


_LOOPS: dict[type, Callable[[Any, jax.Array], _NeuronLoop]] = {
  GLIF: _glif_loop,
  KLIF: _lif_family_loop(neurons.klif_step),
  PLIF: _lif_family_loop(neurons.lif_step),
  LIF: _lif_family_loop(neurons.lif_step),
}


class Recurrent(SpikingNeuron):
  """A recurrent spiking layer: ``x [T, *batch, F] -> (spikes [T, *batch, C], final_state)``.

  The current is ``W_in·x_t + s_{t−1}·W_rec + b`` (`recurrent_step` of the neuron's step);
  ``W_in·x`` runs once for all steps, outside the loop. The neuron's parameters
  stay in ``self.neuron`` (GLIF's gates are found and trained there, as in a feed-forward
  layer); its loop policy (``unroll``) is used. Like the neuron modules, it
  sows its per-channel firing rate under ``nnx.capture``.

  Args:
    in_features: F.
    neuron: the neuron layer of C channels (`GLIF`, `KLIF`, `PLIF` or `LIF`; per layer or
      per channel). For a neuron of one's own, run `recurrent_step` of its step.
    channels: C.
    use_bias: add a learnable per-channel bias ``b`` (zeros at init).
    kernel_init: initialiser of ``W_in`` ``[F, C]``.
    recurrent_init: initialiser of ``W_rec`` ``[C, C]``.
    dtype: compute dtype of ``W_in·x`` (None: the input's); parameters stay float32.
    rngs: initialises the weights.
  """

  def __init__(
    self,
    in_features: int,
    neuron: SpikingNeuron,
    *,
    channels: int,
    use_bias: bool = True,
    kernel_init: nnx.Initializer = LECUN_NORMAL,
    recurrent_init: nnx.Initializer = LECUN_NORMAL,
    dtype: Any = None,
    rngs: nnx.Rngs,
  ):
    if type(neuron) not in _LOOPS:
      names = ", ".join(cls.__name__ for cls in _LOOPS)
      raise TypeError(
        f"neuron must be one of {names} (run recurrent_step of a step of one's own), "
        f"got {type(neuron).__name__}"
      )
    self.neuron = neuron
    self.w_in = nnx.Linear(
      in_features, channels, use_bias=False, kernel_init=kernel_init, dtype=dtype, rngs=rngs
    )
    self.w_rec = nnx.Param(recurrent_init(rngs.params(), (channels, channels), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((channels,))) if use_bias else None

  @property
  def params(self) -> RecurrentParams:
    """The current `RecurrentParams` (``W_in`` is applied before the loop)."""
    bias = None if self.bias is None else self.bias[...]
    return RecurrentParams(self.neuron.params, self.w_rec[...], bias)

  def run(
    self, x: jax.Array, state: RecurrentState | None = None
  ) -> tuple[jax.Array, RecurrentState]:
    """Spikes ``[T, *batch, C]`` and the final `RecurrentState` from ``x [T, *batch, F]``;
    ``state`` None: the neuron at rest and no previous spikes."""
    if jnp.ndim(x) < 2:
      raise ValueError(f"x must have shape [T, *batch, F] (rank >= 2), got {jnp.shape(x)}")
    current = self.w_in(x)  # one product for every step: the kernel acts on the last axis
    loop = _LOOPS[type(self.neuron)](self.neuron, current)
    if state is None:
      state = RecurrentState(loop.state, jnp.zeros(current.shape[1:], current.dtype))
    return neurons.run(
      recurrent_step(loop.step),
      self.params,
      loop.x,
      state,
      unroll=loop.unroll,
    )
