"""Synaptic-layer helpers: time folding, lean layer application and threshold-dependent BN.

`lean_apply` runs a layer with a backward pass that keeps only the layer's input (and
its parameters), recomputing the rest from it; `spikes_in=True` keeps a 0/1 input as
one byte (``int8``), exactly. `TdBatchNorm` applies itself this way in training, so a
batch norm keeps one tensor (its input) for the backward pass instead of several.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax.neurons._loop import after


def fold_time(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  """Applies a per-sample layer to ``x [T, B, ...]`` once, with T folded into the batch.

  ``fn`` sees ``[T·B, ...]``; its output ``[T·B, ...']`` is returned as ``[T, B, ...']``.
  """
  if x.ndim < 2:
    raise ValueError(f"fold_time expects x of shape [T, B, ...] (rank >= 2), got {x.shape}")
  t, b = x.shape[:2]
  y = fn(x.reshape(t * b, *x.shape[2:]))
  return y.reshape(t, b, *y.shape[1:])


def _apply(graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State, x: jax.Array):
  """``(layer(x), the layer's non-parameter state after the call)``, a pure function."""
  layer = nnx.merge(graphdef, params, rest, copy=True)
  return layer(x), nnx.state(layer, nnx.Not(nnx.Param))


def _zero_cotangent(a: jax.Array) -> Any:
  if jnp.issubdtype(a.dtype, jnp.inexact):
    return jnp.zeros_like(a)
  return np.zeros(a.shape, jax.dtypes.float0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _lean(graphdef, spikes_dtype, params, rest, x):
  return _apply(graphdef, params, rest, x)


def _lean_fwd(graphdef, spikes_dtype, params, rest, x):
  kept = x if spikes_dtype is None else x.astype(jnp.int8)
  return _apply(graphdef, params, rest, x), (params, rest, kept)


def _lean_bwd(graphdef, spikes_dtype, residuals, cotangents):
  # The barrier keeps XLA from merging this recomputation with the forward pass's.
  params, rest, kept = jax.lax.optimization_barrier(residuals)
  kept = after(kept, cotangents[0])
  x = kept if spikes_dtype is None else kept.astype(spikes_dtype)
  _, layer_vjp = jax.vjp(lambda p, x: _apply(graphdef, p, rest, x)[0], params, x)
  dparams, dx = layer_vjp(cotangents[0])  # the updated state (batch statistics) has none
  return dparams, jax.tree.map(_zero_cotangent, rest), dx


_lean.defvjp(_lean_fwd, _lean_bwd)


def lean_apply(layer: nnx.Module, x: jax.Array, *, spikes_in: bool = False) -> jax.Array:
  """``layer(x)`` with a backward pass that keeps only ``x`` and the layer's state.

  The backward pass recomputes the layer's internals from ``x`` (for a convolution or a
  linear layer there are none: it needs ``x`` alone) instead of keeping what autodiff
  would keep. The layer's non-parameter state (a batch norm's running statistics) is
  updated as by ``layer(x)``.

  Args:
    layer: an NNX module, ``[N, ...] -> [N, ...']``.
    x: its input.
    spikes_in: ``x`` holds only 0 and 1 (spikes): it is kept as ``int8``, one byte per
      value instead of four, and the gradients are bit for bit those of ``float32``.

  Returns:
    ``layer(x)``.
  """
  graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
  y, new_rest = _lean(graphdef, x.dtype if spikes_in else None, params, rest, x)  # pyright: ignore[reportGeneralTypeIssues]
  nnx.update(layer, new_rest)
  return y


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

  def __call__(self, x: jax.Array, *, spikes_in: bool = False) -> jax.Array:
    """Normalises ``x [..., C]``; in training (batch statistics) by `lean_apply`, so the
    backward pass keeps only ``x`` (one byte per value with ``spikes_in``, see there)."""
    if self.norm.use_running_average:
      return self._normalise(x)
    return lean_apply(_Normalise(self), x, spikes_in=spikes_in)

  def _normalise(self, x: jax.Array) -> jax.Array:
    y = self.norm(x) * self.factor
    return (y * self.scale[...] + self.bias[...]).astype(y.dtype)


class _Normalise(nnx.Module):
  """A view of a `TdBatchNorm` whose call is its normalisation (what `lean_apply` runs)."""

  def __init__(self, bn: TdBatchNorm):
    self.bn = bn

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.bn._normalise(x)
