"""Flax NNX modules: neuron layers, tdBN and the fold-time helper."""

from glif_jax.nn.layers import TdBatchNorm, TimeFolded, fold_time
from glif_jax.nn.neurons import GLIF, KLIF, LIF, PLIF, NeuronParam, SpikingNeuron

__all__ = [
  "GLIF",
  "KLIF",
  "LIF",
  "PLIF",
  "NeuronParam",
  "SpikingNeuron",
  "TdBatchNorm",
  "TimeFolded",
  "fold_time",
]
