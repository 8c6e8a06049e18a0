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


def _kept_bytes(fn, *args):
  residuals = jax.eval_shape(lambda *a: jax.vjp(fn, *a)[1], *args)
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(residuals))


def _grads_and_kept(apply, layer, x, ct):
  """Gradients of ``sum(apply(layer, x)·ct)`` to the layer's parameters and ``x``, and the
  bytes kept for the backward pass (``ct``'s own included: the loss multiplies by it)."""
  graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

  def loss(params, x):
    return jnp.sum(apply(nnx.merge(graphdef, params, rest, copy=True), x) * ct)

  return jax.grad(loss, argnums=(0, 1))(params, x), _kept_bytes(loss, params, x)


def test_lean_conv_on_spikes_keeps_one_byte_and_the_exact_gradients():
  conv = nnx.Conv(3, 5, (3, 3), padding=1, rngs=nnx.Rngs(0))
  spikes = jax.random.bernoulli(jax.random.key(3), 0.3, (B, 6, 6, 3)).astype(jnp.float32)
  ct = jax.random.normal(jax.random.key(4), (B, 6, 6, 5))
  plain, plain_kept = _grads_and_kept(lambda layer, x: layer(x), conv, spikes, ct)
  lean_apply = lambda layer, x: gnn.lean_apply(layer, x, spikes_in=True)
  lean, lean_kept = _grads_and_kept(lean_apply, conv, spikes, ct)
  for a, b in zip(jax.tree.leaves(lean), jax.tree.leaves(plain)):
    np.testing.assert_array_equal(a, b)  # bit for bit
  parameters = (3 * 3 * 3 * 5 + 5) * 4
  assert lean_kept == parameters + spikes.size + ct.size * 4  # int8: one byte per spike
  assert plain_kept >= 3 * 3 * 3 * 5 * 4 + spikes.size * 4 + ct.size * 4  # kernel, float32 x


def test_lean_batch_norm_keeps_its_input_with_autodiffs_gradients_and_statistics():
  x = jax.random.normal(jax.random.key(5), (T * B, 3, 3, C)) * 2 + 1
  ct = jax.random.normal(jax.random.key(6), x.shape)
  bn = gnn.TdBatchNorm(C, alpha=0.7)
  bn.scale[...] = jnp.array([1.0, 2.0, 3.0])
  plain, plain_kept = _grads_and_kept(lambda bn, x: bn._normalise(x), bn, x, ct)
  lean, lean_kept = _grads_and_kept(lambda bn, x: bn(x), bn, x, ct)
  for a, b in zip(jax.tree.leaves(lean), jax.tree.leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  state = 2 * C * 4 + 2 * C * 4  # scale, bias; running mean, variance
  assert lean_kept == x.size * 4 + state + ct.size * 4  # the input, nothing else
  assert plain_kept > 3 * x.size * 4
  bn(x)  # the running statistics advance as nnx.BatchNorm's own
  reference = nnx.BatchNorm(C, momentum=0.9, use_scale=False, use_bias=False, rngs=nnx.Rngs(0))
  reference(x)
  np.testing.assert_array_equal(bn.norm.mean[...], reference.mean[...])
  np.testing.assert_array_equal(bn.norm.var[...], reference.var[...])
