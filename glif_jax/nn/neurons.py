"""Flax NNX neuron modules: they own parameters and call the pure neuron functions.

Each module maps ``x [T, *batch, C] -> (spikes, final_state)`` and accepts an
optional initial ``state``. Under ``nnx.capture(fn, nnx.Intermediate)`` each call
sows the per-channel firing rate ``[C]`` as ``"firing_rate"`` (the latest call's).
Learnable neuron quantities are `NeuronParam`s, so
training can give them their own learning rate and no weight decay::

    weights = nnx.All(nnx.Param, nnx.Not(NeuronParam))
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import neurons, surrogates


class NeuronParam(nnx.Param):
  """A learnable neuron parameter (gate logits, τ, thresholds, k), not a synaptic weight."""


class SpikingNeuron(nnx.Module):
  """Base of the neuron modules: runs the neuron and records its firing rate."""

  @abc.abstractmethod
  def run(self, x: jax.Array, state=None):
    """Calls the pure neuron function: ``(spikes, final_state)``."""

  def __call__(self, x: jax.Array, state=None):
    spikes, final_state = self.run(x, state)
    # Flax 0.12 deprecates sow() outside nnx.capture, which marks the module with
    # __captures__: record only when someone collects, so eager calls add no state.
    if hasattr(self, "__captures__"):
      rate = jnp.mean(spikes, axis=tuple(range(spikes.ndim - 1)), dtype=jnp.float32)
      self.sow(nnx.Intermediate, "firing_rate", rate, reduce_fn=lambda _, new: new)
    return spikes, final_state


class GLIF(SpikingNeuron):
  """Gated LIF layer (`glif_jax.neurons.glif`); GLIF_f with ``simplified=True``.

  Args:
    channels: C, or ``None`` for layer-wise parameters.
    timesteps: T, the number of rows of the learnable conductance.
    gate_init: ``"random"`` or ``"fixed"`` (see `glif_jax.neurons.glif_params`).
    gating: ``"soft"``, ``"hard"`` or ``"static"``.
    simplified: run GLIF_f (fixed gates) instead of GLIF.
    surrogate, detach_reset, unroll, remat: as in `glif_jax.neurons.glif`.
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
    surrogate: surrogates.Surrogate = surrogates.rectangle(),
    detach_reset: bool = False,
    unroll: int | bool | None = None,
    remat: bool | None = None,
    rngs: nnx.Rngs,
  ):
    if gating not in neurons.GATINGS:
      raise ValueError(f"gating must be one of {neurons.GATINGS}, got {gating!r}")
    key = rngs.params() if gate_init == "random" else None
    p = neurons.glif_params(channels, timesteps, gate_init=gate_init, key=key)
    for name, value in p._asdict().items():
      setattr(self, name, NeuronParam(value))
    self.gating = gating
    self.simplified = simplified
    self.options = dict(surrogate=surrogate, detach_reset=detach_reset, unroll=unroll, remat=remat)

  @property
  def params(self) -> neurons.GLIFParams:
    """The current raw-logit parameters as a `GLIFParams`."""
    return neurons.GLIFParams(*(getattr(self, f)[...] for f in neurons.GLIFParams._fields))

  def run(self, x: jax.Array, state: neurons.GLIFState | None = None):
    if self.simplified:
      return neurons.glif_f(self.params, x, state, **self.options)
    return neurons.glif(self.params, x, state, gating=self.gating, **self.options)


class KLIF(SpikingNeuron):
  """KLIF layer (`glif_jax.neurons.klif`) with a learnable scale ``k`` (init 1).

  Args:
    channels: C for a per-channel k, or ``None`` for one k per layer (the paper's).
    k: initial k.
    **options: keyword arguments of `glif_jax.neurons.klif` (tau, v_th, v_reset,
      decay_input, scale_reset, surrogate, detach_reset, unroll, remat).
  """

  def __init__(self, channels: int | None = None, *, k: float = 1.0, **options):
    self.k = NeuronParam(neurons.klif_params(k, channels).k)
    self.options = options

  def run(self, x: jax.Array, state: neurons.KLIFState | None = None):
    return neurons.klif(neurons.KLIFParams(self.k[...]), x, state, **self.options)


class PLIF(SpikingNeuron):
  """Parametric LIF layer (`glif_jax.neurons.plif`): learnable ``1/τ = sigmoid(w)``.

  Args:
    channels: C for a per-channel τ, or ``None`` for one τ per layer.
    init_tau: initial τ (> 1).
    **options: keyword arguments of `glif_jax.neurons.plif`.
  """

  def __init__(self, channels: int | None = None, *, init_tau: float = 2.0, **options):
    self.w = NeuronParam(neurons.plif_params(init_tau, channels).w)
    self.options = options

  def run(self, x: jax.Array, state: neurons.LIFState | None = None):
    return neurons.plif(neurons.PLIFParams(self.w[...]), x, state, **self.options)


class LIF(SpikingNeuron):
  """LIF layer (`glif_jax.neurons.lif`); it has no learnable parameters.

  Args:
    **options: keyword arguments of `glif_jax.neurons.lif` (tau, v_th, v_reset, ...).
  """

  def __init__(self, **options):
    self.options = options

  def run(self, x: jax.Array, state: neurons.LIFState | None = None):
    return neurons.lif(x, state, **self.options)
