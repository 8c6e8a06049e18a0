"""Building blocks shared by the model zoo: layer factory, encoder, classifier.

Every synaptic layer here is per-sample (``[N, ...]``); models apply it to time-major
activations with `glif_jax.nn.fold_time`, so a convolution runs once on ``[T·B, ...]``
and only the neurons scan over T.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import nn as snn

NEURON_NAMES = ("glif", "glif_f", "klif", "lif", "plif")

# tdBN's α on the second BN of a residual block and on the shortcut BN (Zheng et al. 2021).
RESIDUAL_BN_ALPHA = 1 / math.sqrt(2)

# PyTorch's kaiming_normal_(mode="fan_out", nonlinearity="relu"), as the GLIF authors' code.
_conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass(frozen=True)
class LayerFactory:
  """Builds the layers of one model with shared settings.

  Attributes:
    neuron: one of `NEURON_NAMES`.
    timesteps: T (GLIF's conductance has one row per step).
    neuron_options: extra keyword arguments of the neuron module.
    remat: checkpoint each residual block (see `run_blocks`).
    bn_axis_name: pmap/shard_map axis over which tdBN averages its batch statistics.
    dtype: compute dtype of the synaptic layers; parameters stay float32.
  """

  neuron: str
  timesteps: int
  neuron_options: dict[str, Any] = dataclasses.field(default_factory=dict)
  remat: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.neuron not in NEURON_NAMES:
      raise ValueError(f"neuron must be one of {NEURON_NAMES}, got {self.neuron!r}")

  def spiking(self, channels: int, *, rngs: nnx.Rngs) -> snn.SpikingNeuron:
    """A neuron layer for ``channels`` channels.

    GLIF and GLIF_f are channel-wise (the paper's: (7 + T)·C parameters); KLIF's k and
    PLIF's τ are one per layer; LIF has no parameters.
    """
    options = dict(self.neuron_options)
    try:
      if self.neuron in ("glif", "glif_f"):
        return snn.GLIF(
          channels, self.timesteps, simplified=self.neuron == "glif_f", rngs=rngs, **options
        )
      return {"klif": snn.KLIF, "lif": snn.LIF, "plif": snn.PLIF}[self.neuron](**options)
    except TypeError as e:
      raise ValueError(
        f"invalid neuron_options {self.neuron_options} for {self.neuron!r}: {e}"
      ) from e

  def conv(self, cin: int, cout: int, kernel: int, *, stride: int = 1, rngs: nnx.Rngs) -> nnx.Conv:
    """A bias-free ``kernel``×``kernel`` convolution with PyTorch's symmetric padding k // 2."""
    return nnx.Conv(
      cin,
      cout,
      (kernel, kernel),
      strides=stride,
      padding=kernel // 2,
      use_bias=False,
      kernel_init=_conv_init,
      dtype=self.dtype,
      rngs=rngs,
    )

  def norm(self, channels: int, *, alpha: float = 1.0, rngs: nnx.Rngs) -> snn.TdBatchNorm:
    """A tdBN layer (V_th = 0.5) with this model's batch axis and dtype."""
    return snn.TdBatchNorm(
      channels, alpha=alpha, axis_name=self.bn_axis_name, dtype=self.dtype, rngs=rngs
    )

  def conv_bn(
    self,
    cin: int,
    cout: int,
    kernel: int,
    *,
    stride: int = 1,
    alpha: float = 1.0,
    pool: Callable[[jax.Array], jax.Array] | None = None,
    rngs: nnx.Rngs,
  ) -> ConvBN:
    """Convolution (no bias) followed by tdBN and, if given, ``pool``."""
    return ConvBN(
      self.conv(cin, cout, kernel, stride=stride, rngs=rngs),
      self.norm(cout, alpha=alpha, rngs=rngs),
      pool,
    )

  def conv_spike(
    self, cin: int, cout: int, kernel: int, *, stride: int = 1, rngs: nnx.Rngs
  ) -> ConvSpike:
    """Convolution (no bias), tdBN and a neuron on ``[T, B, H, W, C]``."""
    return ConvSpike(
      self.conv_bn(cin, cout, kernel, stride=stride, rngs=rngs), self.spiking(cout, rngs=rngs)
    )

  def encoder(
    self,
    layer: Callable[[jax.Array], jax.Array],
    *,
    in_channels: int,
    input_size: int | None = None,
  ) -> Encoder:
    """The input check and direct encoding around the first layer (see `Encoder`)."""
    return Encoder(
      layer,
      timesteps=self.timesteps,
      in_channels=in_channels,
      input_size=input_size,
      dtype=self.dtype,
    )

  def linear(self, cin: int, cout: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """A fully connected layer with bias."""
    return nnx.Linear(cin, cout, dtype=self.dtype, rngs=rngs)


class ConvBN(nnx.Module):
  """A per-sample convolution, tdBN and optional pooling: ``[N, H, W, C] -> [N, H', W', C']``."""

  def __init__(
    self,
    conv: nnx.Conv,
    norm: snn.TdBatchNorm,
    pool: Callable[[jax.Array], jax.Array] | None = None,
  ):
    self.conv = conv
    self.norm = norm
    self.pool = pool

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.norm(self.conv(x))
    return y if self.pool is None else self.pool(y)


class ConvSpike(nnx.Module):
  """`ConvBN` with T folded into the batch, then a neuron: ``[T, B, H, W, C]`` → spikes."""

  def __init__(self, conv_bn: ConvBN, neuron: snn.SpikingNeuron):
    self.conv_bn = conv_bn
    self.neuron = neuron

  def __call__(self, x: jax.Array) -> jax.Array:
    return fire(self.neuron, snn.fold_time(self.conv_bn, x))


def fire(neuron: snn.SpikingNeuron, x: jax.Array) -> jax.Array:
  """Runs a neuron layer on ``x [T, ...]`` from rest and keeps only its spikes."""
  spikes, _ = neuron(x)
  return spikes


def check_input(
  x: jax.Array, *, timesteps: int, in_channels: int, input_size: int | None, dtype: Any
) -> jax.Array:
  """Checks a model input and casts it to the compute dtype.

  Args:
    x: static images ``[B, H, W, C]`` or event frames ``[T, B, H, W, C]``.
    timesteps: the model's T (event frames must have it).
    in_channels: the model's C.
    input_size: the side H = W the model was built for, or None for any size.
    dtype: the compute dtype.

  Returns:
    ``x`` in ``dtype``.
  """
  x = jnp.asarray(x)
  if x.ndim not in (4, 5):
    raise ValueError(
      "input must be static images [B, H, W, C] (rank 4) or event frames "
      f"[T, B, H, W, C] (rank 5), got shape {x.shape}"
    )
  if x.shape[-1] != in_channels:
    raise ValueError(
      f"input must have in_channels={in_channels} channels (last axis), got shape {x.shape}"
    )
  if x.ndim == 5 and x.shape[0] != timesteps:
    raise ValueError(
      f"event input [T, B, H, W, C] must have T = timesteps = {timesteps}, got shape {x.shape}"
    )
  if input_size is not None and x.shape[-3:-1] != (input_size, input_size):
    raise ValueError(
      f"this model was built for {input_size}x{input_size} inputs (input_size={input_size}), "
      f"got shape {x.shape}"
    )
  return x.astype(dtype)


class Encoder(nnx.Module):
  """Checks the model input and runs the first, non-spiking layer: ``[T, B, ...]`` out.

  Direct encoding: a static image ``[B, H, W, C]`` is the same at every time step, so
  ``layer`` (the first convolution and BN) runs once on ``[B, ...]`` and its result is
  repeated over T — a T-fold saving on the first layer with the same output (BN sees T
  identical copies, whose mean and variance are the single copy's). Event frames
  ``[T, B, H, W, C]`` go through ``layer`` with T folded into the batch.

  Args:
    layer: per-sample first layer(s), ``[N, H, W, C] -> [N, ...]``.
    timesteps: T.
    in_channels: C of the input.
    input_size: the side H = W the model needs (flattening models), None for any.
    dtype: compute dtype the input is cast to.
  """

  def __init__(
    self,
    layer: Callable[[jax.Array], jax.Array],
    *,
    timesteps: int,
    in_channels: int,
    input_size: int | None,
    dtype: Any,
  ):
    self.layer = layer
    self.timesteps = timesteps
    self.in_channels = in_channels
    self.input_size = input_size
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    x = check_input(
      x,
      timesteps=self.timesteps,
      in_channels=self.in_channels,
      input_size=self.input_size,
      dtype=self.dtype,
    )
    if x.ndim == 4:
      y = self.layer(x)
      return jnp.broadcast_to(y[None], (self.timesteps, *y.shape))
    return snn.fold_time(self.layer, x)


def global_avg_pool(x: jax.Array) -> jax.Array:
  """Mean over the spatial axes of ``[..., H, W, C]``: ``[..., C]``."""
  return jnp.mean(x, axis=(-3, -2))


def flatten(x: jax.Array) -> jax.Array:
  """``[N, ...] -> [N, F]``."""
  return x.reshape(x.shape[0], -1)


def avg_pool(x: jax.Array) -> jax.Array:
  """2×2 average pooling with stride 2 on ``[N, H, W, C]`` (odd sides drop their last row).

  Written as a reshape and mean, which XLA on CPU runs several times faster than a
  ``reduce_window`` (forward and backward); the result is `nnx.avg_pool`'s.
  """
  n, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _call(block: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  return block(x)


_remat_call = nnx.remat(_call)


def run_blocks(blocks: Sequence[nnx.Module], x: jax.Array, *, remat: bool) -> jax.Array:
  """Applies ``blocks`` in order; with ``remat`` each one is checkpointed (`nnx.remat`).

  Checkpointed, a block keeps only its input for the backward pass and recomputes its
  insides there, so activation memory holds one block's internals instead of all of them.
  """
  call = _remat_call if remat else _call
  for block in blocks:
    x = call(block, x)
  return x


def max_pool_3x3(x: jax.Array) -> jax.Array:
  """3×3 max pooling with stride 2 and padding 1 (ResNet's stem) on ``[N, H, W, C]``."""
  return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


class Classifier(nnx.Module):
  """``[T, B, F] -> [T, B, classes]``: (FC + neuron) per hidden size, then FC.

  Args:
    factory: the model's `LayerFactory`.
    features: F.
    hidden: sizes of the hidden spiking layers (may be empty).
    num_classes: number of logits.
    rngs: parameter initialisation.
  """

  def __init__(
    self,
    factory: LayerFactory,
    features: int,
    hidden: tuple[int, ...],
    num_classes: int,
    *,
    rngs: nnx.Rngs,
  ):
    sizes = (features, *hidden)
    self.fcs = nnx.List([factory.linear(a, b, rngs=rngs) for a, b in zip(sizes, hidden)])
    self.neurons = nnx.List([factory.spiking(h, rngs=rngs) for h in hidden])
    self.head = factory.linear(sizes[-1], num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for fc, neuron in zip(self.fcs, self.neurons):
      x = fire(neuron, snn.fold_time(fc, x))
    return snn.fold_time(self.head, x).astype(jnp.float32)
