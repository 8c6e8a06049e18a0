"""Synaptic-layer helpers: time folding and threshold-dependent batch norm."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx


def fold_time(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  """Applies a per-sample layer to ``x [T, B, ...]`` once, with T folded into the batch.

  ``fn`` sees ``[T·B, ...]``; its output ``[T·B, ...']`` is returned as ``[T, B, ...']``.
  """
  if x.ndim < 2:
    raise ValueError(f"fold_time expects x of shape [T, B, ...] (rank >= 2), got {x.shape}")
  t, b = x.shape[:2]
  y = fn(x.reshape(t * b, *x.shape[2:]))
  return y.reshape(t, b, *y.shape[1:])


class TimeFolded(nnx.Module):
  """Wraps a per-sample layer (Conv, Linear, pooling) to run on ``[T, B, ...]`` via `fold_time`."""

  def __init__(self, layer: Callable[[jax.Array], jax.Array]):
    self.layer = layer

  def __call__(self, x: jax.Array) -> jax.Array:
    return fold_time(self.layer, x)


class TdBatchNorm(nnx.Module):
  """Threshold-dependent batch norm (tdBN, Zheng et al. 2021) on ``[T, B, ..., C]``.

  Statistics per channel over all other axes (T·B and space)::

      y = alpha · v_th · (x − μ) / sqrt(σ² + eps) · scale + bias

  Args:
    num_features: C.
    alpha: 1, or 1/√2 on the second BN of a residual block and on the shortcut BN.
    v_th: the threshold factor (0.5 in GLIF's code).
    momentum: running-average decay (PyTorch's 0.1 is 0.9 here).
    epsilon: added to the variance.
    axis_name: pmap/shard_map axis over which batch statistics are averaged.
    dtype: compute dtype (None: from the input).
  """

  def __init__(
    self,
    num_features: int,
    *,
    alpha: float = 1.0,
    v_th: float = 0.5,
    momentum: float = 0.9,
    epsilon: float = 1e-5,
    axis_name: str | None = None,
    dtype=None,
  ):
    self.norm = nnx.BatchNorm(
      num_features,
      use_scale=False,
      use_bias=False,
      momentum=momentum,
      epsilon=epsilon,
      axis_name=axis_name,
      dtype=dtype,
      rngs=nnx.Rngs(0),  # never drawn: this BN has no scale or bias of its own
    )
    self.factor = alpha * v_th
    self.scale = nnx.Param(jnp.ones((num_features,)))
    self.bias = nnx.Param(jnp.zeros((num_features,)))

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.norm(x) * self.factor
    return (y * self.scale[...] + self.bias[...]).astype(y.dtype)
