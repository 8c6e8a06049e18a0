"""Flax NNX neuron modules: they own parameters and call the pure neuron functions.

Each module maps ``x [T, *batch, C] -> (spikes, final_state)`` and accepts an
optional initial ``state``. Under ``nnx.capture(fn, nnx.Intermediate)`` each call
sows the per-channel firing rate ``[C]`` as ``"firing_rate"`` (the latest call's).
Each module holds one constants value (`glif_jax.neurons.GLIFConstants` or
`LIFConstants`), built from its keyword arguments and validated once here, plus its
time-loop policy (``unroll``). Learnable neuron quantities are
`NeuronParam`s, so
training can give them their own learning rate and no weight decay::

    weights = nnx.All(nnx.Param, nnx.Not(NeuronParam))
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import neurons, surrogates


class NeuronParam(nnx.Param):
  """A learnable neuron parameter (gate logits, τ, thresholds, k), not a synaptic weight."""


class SpikingNeuron(nnx.Module):
  """Base of the neuron modules: runs the neuron and records its firing rate."""

  @abc.abstractmethod
  def run(self, x: jax.Array, state=None) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """Calls the pure neuron function: ``(spikes, final_state)``."""

  def __call__(self, x: jax.Array, state=None):
    spikes, final_state = self.run(x, state)
    # Only an nnx.capture that collects nnx.Intermediate gives the module Intermediate
    # state; sowing outside one is deprecated in Flax 0.12 and would add a variable.
    if nnx.state(self, nnx.Intermediate):
      rate = jnp.mean(spikes, axis=tuple(range(spikes.ndim - 1)), dtype=jnp.float32)
      # Flax's annotation: sow's default init_fn returns () but is typed () -> B (jax.Array).
      self.sow(  # pyright: ignore[reportArgumentType]
        nnx.Intermediate, "firing_rate", rate, reduce_fn=lambda _, new: new
      )
    return spikes, final_state

  def _hold_params(self, params: NamedTuple | None) -> None:
    """Holds each field of ``params`` as a `NeuronParam` of its name (`params` reads them)."""
    self._params_type: type[Any] | None = None if params is None else type(params)
    for name, value in (params._asdict() if params is not None else {}).items():
      setattr(self, name, NeuronParam(value))

  @property
  def params(self) -> Any:
    """The current parameters as the neuron function takes them (`glif_jax.neurons.GLIFParams`,
    `KLIFParams`, `PLIFParams`; None for LIF)."""
    cls = self._params_type
    return None if cls is None else cls(*(getattr(self, f)[...] for f in cls._fields))


class GLIF(SpikingNeuron):
  """Gated LIF layer (`glif_jax.neurons.glif`); GLIF_f with ``simplified=True``.

  Args:
    channels: C, or ``None`` for layer-wise parameters.
    timesteps: T, the number of rows of the learnable conductance.
    gate_init: ``"random"`` or ``"fixed"`` (see `glif_jax.neurons.glif_params`).
    gating, simplified, surrogate, detach_reset: the fields of
      `glif_jax.neurons.GLIFConstants`, held as ``self.constants``.
    tau, v_th, leak, v_reset, conduct: initial values after the sigmoid
      (see `glif_jax.neurons.glif_params`; ``leak=None`` is ``v_th / 8``).
    unroll: the time-loop policy of `glif_jax.neurons.run`.
    rngs: draws the random gate logits.
  """

  def __init__(
    self,
    channels: int | None,
    timesteps: int,
    *,
    gate_init: str = "random",
    gating: str = "soft",
    simplified: bool = False,
    tau: float = 0.25,
    v_th: float = 0.5,
    leak: float | None = None,
    v_reset: float = 0.5,
    conduct: float = 0.5,
    surrogate: surrogates.Surrogate = surrogates.rectangle(),
    detach_reset: bool = False,
    unroll: int | bool | None = None,
    rngs: nnx.Rngs,
  ):
    self.constants = neurons.GLIFConstants(gating, simplified, detach_reset, surrogate).validated()
    key = rngs.params() if gate_init == "random" else None
    p = neurons.glif_params(
      channels,
      timesteps,
      gate_init=gate_init,
      key=key,
      tau=tau,
      v_th=v_th,
      leak=leak,
      v_reset=v_reset,
      conduct=conduct,
    )
    self._hold_params(p)
    self.unroll = unroll

  def run(self, x: jax.Array, state: neurons.GLIFState | None = None):
    return neurons.glif(self.params, x, state, constants=self.constants, unroll=self.unroll)


class _LIFFamily(SpikingNeuron):
  """LIF, PLIF and KLIF: `glif_jax.neurons.LIFConstants`, the loop policy, the parameters.

  ``options`` are ``unroll`` and the fields of `LIFConstants` (its defaults
  where not given) less those the neuron does not take (``_refused``); the constants are
  held as ``self.constants``, each field of ``params`` as a `NeuronParam` of its name.
  """

  constants: neurons.LIFConstants
  _refused: tuple[str, ...] = ("scale_reset",)  # only KLIF divides its reset by k
  _layer: Callable[..., tuple[jax.Array, neurons.LIFState]]  # neurons.klif or neurons.plif

  def __init__(
    self,
    params: NamedTuple | None,
    *,
    unroll: int | bool | None = None,
    **constants: Any,
  ):
    for name in self._refused:
      if name in constants:
        raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
    self.constants = neurons.LIFConstants(**constants).validated()
    self._hold_params(params)
    self.unroll = unroll

  def run(self, x: jax.Array, state: neurons.LIFState | None = None):
    p = self.params
    return self._layer(p, x, state, constants=self.constants, unroll=self.unroll)


class KLIF(_LIFFamily):
  """KLIF layer (`glif_jax.neurons.klif`) with a learnable scale ``k``.

  Args:
    channels: C for a per-channel k, or ``None`` for one k per layer (the paper's).
    k: initial k.
    **options: ``unroll`` (the time-loop policy of `glif_jax.neurons.run`) and
      the fields of `glif_jax.neurons.LIFConstants` (``tau``, ``v_th``, ``v_reset``,
      ``decay_input``, ``scale_reset``, ``surrogate``, ``detach_reset``).
  """

  k: NeuronParam
  _refused = ()
  _layer = staticmethod(neurons.klif)

  def __init__(self, channels: int | None = None, *, k: float = 1.0, **options: Any):
    super().__init__(neurons.klif_params(k, channels), **options)


class PLIF(_LIFFamily):
  """Parametric LIF layer (`glif_jax.neurons.plif`): learnable ``1/τ = sigmoid(w)``.

  Args:
    channels: C for a per-channel τ, or ``None`` for one τ per layer.
    init_tau: initial τ (> 1).
    **options: ``unroll`` and the fields of `glif_jax.neurons.LIFConstants`
      but ``tau`` (learnt) and ``scale_reset`` (KLIF's), as `KLIF`.
  """

  w: NeuronParam  # the logit of 1/τ
  _refused = ("tau", "scale_reset")
  _layer = staticmethod(neurons.plif)

  def __init__(self, channels: int | None = None, *, init_tau: float = 2.0, **options: Any):
    super().__init__(neurons.plif_params(init_tau, channels), **options)


class LIF(_LIFFamily):
  """LIF layer (`glif_jax.neurons.lif`); it has no learnable parameters.

  Args:
    **options: ``unroll`` and the fields of `glif_jax.neurons.LIFConstants`
      but ``scale_reset`` (KLIF's), as `KLIF`.
  """

  def __init__(self, **options: Any):
    super().__init__(None, **options)

  def run(self, x: jax.Array, state: neurons.LIFState | None = None):
    return neurons.lif(x, state, constants=self.constants, unroll=self.unroll)
