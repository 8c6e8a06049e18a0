"""Small networks for MNIST-like data: a two-layer spiking CNN and a spiking MLP.

FLOPs of `SpikingCNN` per 28×28×1 sample (1 MAC = 2 FLOPs; width w, T steps)::

    conv1 1→w, 28×28 (once: direct encoding)     28·28·9·w      MACs
    conv2 w→2w, 14×14 (every step)                14·14·9·w·2w   MACs · T
    FC 7·7·2w → 10 (every step)                   98·w·10        MACs · T

At the default w = 16, T = 4: 0.113M + 4·(0.903M + 0.016M) = 3.79M MACs = 7.6 MFLOPs
forward, ≈ 23 MFLOPs for forward + backward (≈ 3× forward), so ≈ 1.4 TFLOP per epoch of
60k images (what that takes on a machine: ``bench/README.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import nn as snn
from glif_jax.models import _layers


@_layers.init_signature
class SpikingCNN(nnx.Module):
  """``cnn_small``: two conv-BN-neuron layers with 2×2 max pooling, then FC layers::

      conv3x3 C→w → tdBN → neuron → maxpool 2 → conv3x3 w→2w → tdBN → neuron → maxpool 2
      → flatten → [FC → neuron]* → FC → classes

  Max pooling of spikes is their OR, still binary: every synaptic layer after the first
  receives spikes (accumulates, SOPs), where average pooling would hand it fractions.

  Args:
    width: w.
    input_size: side of the square input (the flatten fixes it).
    hidden: sizes of spiking FC layers before the classifier.
    in_channels, num_classes: as in `glif_jax.models.resnet.SpikingResNet`.
    timesteps, norm, neuron, neuron_options, bn_axis_name, dtype, rngs: as in that class.
  """

  has_norm: ClassVar[bool] = True
  fixed_input_size: ClassVar[bool] = True  # the flatten fixes it
  has_blocks: ClassVar[bool] = False  # no blocks to checkpoint: takes no ``remat``

  def __init__(
    self,
    *,
    width: int,
    input_size: int,
    hidden: tuple[int, ...] = (),
    in_channels: int,
    num_classes: int,
    timesteps: int,
    norm: str,
    neuron: str = "glif",
    neuron_options: Mapping[str, Any] | None = None,
    bn_axis_name: str | None = None,
    dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
  ):
    side = _layers.pooled_side(input_size, 2)
    layers = _layers.network_layers(
      _layers.KAIMING_FAN_OUT,
      input_size=input_size,
      in_channels=in_channels,
      timesteps=timesteps,
      norm=norm,
      neuron=neuron,
      neuron_options=neuron_options,
      bn_axis_name=bn_axis_name,
      dtype=dtype,
      rngs=rngs,
    )

    def conv_norm(cin: int, cout: int) -> _layers.ConvNorm:
      return _layers.ConvNorm(layers.conv(cin, cout, (3, 3), padding=1), layers.norm(cout))

    self.stem = layers.encoder(conv_norm(in_channels, width))
    self.stem_neuron = layers.neuron(width)
    self.conv = _layers.ConvSpike(conv_norm(width, 2 * width), layers.neuron(2 * width))
    features = side**2 * 2 * width
    self.classifier = _layers.Classifier(
      features, hidden, num_classes, neuron=layers.neuron, dtype=layers.dtype, rngs=layers.rngs
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of images ``[B, H, W, C]`` or frames ``[T, B, H, W, C]``."""
    x = snn.fold_time(_layers.max_pool, _layers.fire(self.stem_neuron, self.stem(x)))
    x = snn.fold_time(_layers.max_pool, self.conv(x, spikes_in=True))
    return self.classifier(snn.fold_time(_layers.flatten, x))


@_layers.init_signature
class SpikingMLP(nnx.Module):
  """``mlp``: ``flatten → (FC → neuron) per hidden size → FC → classes``.

  The first FC runs once on static input (direct encoding, see `_layers.Encoder`).

  Args:
    input_size: side of the square input.
    hidden: sizes of the hidden spiking layers (at least one).
    in_channels, num_classes, timesteps, neuron, neuron_options, dtype, rngs: as in
      `SpikingCNN`.
  """

  has_norm: ClassVar[bool] = False  # takes no ``norm`` (nor ``bn_axis_name``)
  fixed_input_size: ClassVar[bool] = True
  has_blocks: ClassVar[bool] = False

  def __init__(
    self,
    *,
    input_size: int,
    hidden: tuple[int, ...],
    in_channels: int,
    num_classes: int,
    timesteps: int,
    neuron: str = "glif",
    neuron_options: Mapping[str, Any] | None = None,
    dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
  ):
    if not hidden:
      raise ValueError("SpikingMLP needs at least one hidden layer, got hidden=()")
    make_neuron = functools.partial(
      _layers.neuron_def(neuron, timesteps, **(neuron_options or {})), rngs=rngs
    )
    first = nnx.Linear(input_size**2 * in_channels, hidden[0], dtype=dtype, rngs=rngs)
    self.stem = _layers.Encoder(
      nnx.Sequential(_layers.flatten, first),
      timesteps=timesteps,
      in_channels=in_channels,
      input_size=input_size,
      dtype=dtype,
    )
    self.stem_neuron = make_neuron(hidden[0])
    self.classifier = _layers.Classifier(
      hidden[0], hidden[1:], num_classes, neuron=make_neuron, dtype=dtype, rngs=rngs
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of images ``[B, H, W, C]`` or frames ``[T, B, H, W, C]``."""
    return self.classifier(_layers.fire(self.stem_neuron, self.stem(x)))


def MLP(
  *,
  num_classes: int,
  timesteps: int,
  in_channels: int,
  width: int = 256,
  input_size: int = 28,
  neuron: str = "glif",
  neuron_options: Mapping[str, Any] | None = None,
  dtype: Any = jnp.float32,
  rngs: nnx.Rngs,
) -> SpikingMLP:
  """``mlp``: a `SpikingMLP` with one hidden layer of ``width`` units."""
  return SpikingMLP(
    hidden=(width,),
    input_size=input_size,
    in_channels=in_channels,
    num_classes=num_classes,
    timesteps=timesteps,
    neuron=neuron,
    neuron_options=neuron_options,
    dtype=dtype,
    rngs=rngs,
  )


CNNSmall = functools.partial(SpikingCNN, width=16, input_size=28, norm="tdbn")
