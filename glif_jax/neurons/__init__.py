"""Pure neuron functions: NamedTuple parameters and state, scanned over time.

Every function takes time-major, channel-last input ``[T, *batch, C]`` and returns
``(spikes, final_state)``; ``*_step`` functions advance one time step. They import
no Flax and work under `jax.jit`, `jax.grad`, `jax.vmap` and `jax.pmap`.
"""

from glif_jax.neurons.glif import (
  GATINGS,
  GLIFCoefficients,
  GLIFParams,
  GLIFState,
  glif,
  glif_coefficients,
  glif_f,
  glif_gates,
  glif_params,
  glif_step,
)
from glif_jax.neurons.klif import KLIFParams, KLIFState, klif, klif_params, klif_step
from glif_jax.neurons.lif import LIFState, PLIFParams, lif, lif_step, plif, plif_params

__all__ = [
  "GATINGS",
  "GLIFCoefficients",
  "GLIFParams",
  "GLIFState",
  "KLIFParams",
  "KLIFState",
  "LIFState",
  "PLIFParams",
  "glif",
  "glif_coefficients",
  "glif_f",
  "glif_gates",
  "glif_params",
  "glif_step",
  "klif",
  "klif_params",
  "klif_step",
  "lif",
  "lif_step",
  "plif",
  "plif_params",
]
