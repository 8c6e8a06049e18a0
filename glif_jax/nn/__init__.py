"""Flax NNX modules: neuron layers, recurrent layers, tdBN and the fold-time helper."""

from glif_jax.nn.layers import TdBatchNorm, TimeFolded, fold_time, lean_apply
from glif_jax.nn.neurons import GLIF, KLIF, LIF, PLIF, NeuronParam, SpikingNeuron
from glif_jax.nn.recurrent import Recurrent, RecurrentParams, RecurrentState, recurrent_step

__all__ = [
  "GLIF",
  "KLIF",
  "LIF",
  "PLIF",
  "NeuronParam",
  "Recurrent",
  "RecurrentParams",
  "RecurrentState",
  "SpikingNeuron",
  "TdBatchNorm",
  "TimeFolded",
  "fold_time",
  "lean_apply",
  "recurrent_step",
]
