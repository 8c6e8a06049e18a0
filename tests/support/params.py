"""Random GLIF parameters for the neuron tests, and their float64 NumPy copy for
`tests.support.numpy_reference`."""

import jax
import numpy as np

from glif_jax import neurons


def random_params(key, channels=4, timesteps=6, scale=1.0):
  """Random raw logits around the defaults."""
  base = neurons.glif_params(channels, timesteps, gate_init="fixed")
  keys = jax.random.split(key, len(base))
  return neurons.GLIFParams(
    *(v + scale * jax.random.normal(k, v.shape) for v, k in zip(base, keys))
  )


def as_numpy(p):
  return {name: np.asarray(value, np.float64) for name, value in p._asdict().items()}
