"""The layers (`glif_jax.nn.layers`): tdBN's formula and running average, folding time."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import nn as gnn

T, B, C = 4, 2, 3


def test_td_batch_norm_formula_and_running_average():
  x = jax.random.normal(jax.random.key(2), (T, B, 3, 3, C)) * 2 + 1
  bn = gnn.TdBatchNorm(C, alpha=1 / math.sqrt(2), v_th=0.5)
  bn.scale[...] = jnp.array([1.0, 2.0, 3.0])
  bn.bias[...] = jnp.array([0.0, 0.1, -0.1])
  y = bn(x)
  flat = np.asarray(x).reshape(-1, C)  # statistics over T·B·H·W
  mean, var = flat.mean(0), flat.var(0)
  expected = (0.5 / math.sqrt(2)) * (flat - mean) / np.sqrt(var + 1e-5) * [1, 2, 3] + [0, 0.1, -0.1]
  np.testing.assert_allclose(np.asarray(y).reshape(-1, C), expected, atol=1e-5)
  np.testing.assert_allclose(bn.norm.mean[...], 0.1 * mean, rtol=1e-5)
  bn.eval()
  y_eval = bn(x)
  running = (flat - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-5)
  np.testing.assert_allclose(
    np.asarray(y_eval).reshape(-1, C),
    (0.5 / math.sqrt(2)) * running * [1, 2, 3] + [0, 0.1, -0.1],
    rtol=1e-4,
    atol=1e-5,
  )


def test_fold_time_equals_a_loop_over_time():
  conv = nnx.Conv(2, 4, (3, 3), strides=2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(3), (T, B, 8, 8, 2))
  folded = gnn.TimeFolded(conv)(x)
  assert folded.shape == (T, B, 4, 4, 4)
  np.testing.assert_allclose(folded, jnp.stack([conv(x[t]) for t in range(T)]), atol=1e-5)
  with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\].*\(5,\)"):
    gnn.fold_time(conv, jnp.ones((5,)))
