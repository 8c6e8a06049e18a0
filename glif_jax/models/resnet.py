"""Spiking ResNets of the GLIF paper: ResNet-19/18 (CIFAR) and ResNet-18MS/34MS (ImageNet).

Layouts follow the GLIF authors' PyTorch code (``networks_for_CIFAR.py``,
``networks_for_ImageNet.py`` and ``blocks.py`` of their ``Gated-LIF`` repository):

- `BasicBlock` (post-activation)::

      out = conv3x3(stride) → tdBN → neuron → conv3x3 → tdBN(α=1/√2)
      out = neuron(out + shortcut(x))

  where the shortcut is tdBN(α=1/√2) alone when the shape is kept (the authors normalise
  the identity branch too) and conv1x1(stride) → tdBN(α=1/√2) when it changes.
- `MSBlock` (membrane shortcut, Hu et al., MS-ResNet)::

      out = neuron → conv3x3(stride) → tdBN → neuron → conv3x3 → tdBN(α=1/√2)
      out = out + shortcut(x)

  with the same shortcut; the block's input and output are membrane (pre-spike) values,
  so the residual stream is never binarised.
"""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from glif_jax import nn as snn
from glif_jax.models import _layers

# (blocks, width, stride) per stage, widths relative to the base width.
Stage = tuple[int, int, int]


def _shortcut(
  factory: _layers.LayerFactory, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs
) -> nnx.Module:
  """tdBN(α=1/√2), after a strided 1×1 convolution when the shape changes."""
  alpha = _layers.RESIDUAL_BN_ALPHA
  if cin == cout and stride == 1:
    return factory.norm(cout, alpha=alpha, rngs=rngs)
  return factory.conv_bn(cin, cout, 1, stride=stride, alpha=alpha, rngs=rngs)


class _Residual(nnx.Module):
  """The two conv-BN layers, middle neuron and shortcut common to both block types."""

  def __init__(
    self, factory: _layers.LayerFactory, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs
  ):
    self.conv1 = factory.conv_spike(cin, cout, 3, stride=stride, rngs=rngs)
    self.conv2 = factory.conv_bn(cout, cout, 3, alpha=_layers.RESIDUAL_BN_ALPHA, rngs=rngs)
    self.shortcut = _shortcut(factory, cin, cout, stride, rngs=rngs)

  def residual(self, x: jax.Array) -> jax.Array:
    """conv → BN → neuron → conv → BN on ``x [T, B, H, W, C]``."""
    return snn.fold_time(self.conv2, self.conv1(x))


class BasicBlock(_Residual):
  """Spikes in, spikes out: ``neuron(residual(x) + shortcut(x))``."""

  def __init__(
    self, factory: _layers.LayerFactory, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs
  ):
    super().__init__(factory, cin, cout, stride, rngs=rngs)
    self.neuron2 = factory.spiking(cout, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return _layers.fire(self.neuron2, self.residual(x) + snn.fold_time(self.shortcut, x))


class MSBlock(_Residual):
  """Membrane in, membrane out: ``residual(neuron(u)) + shortcut(u)``."""

  def __init__(
    self, factory: _layers.LayerFactory, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs
  ):
    super().__init__(factory, cin, cout, stride, rngs=rngs)
    self.neuron0 = factory.spiking(cin, rngs=rngs)

  def __call__(self, u: jax.Array) -> jax.Array:
    return self.residual(_layers.fire(self.neuron0, u)) + snn.fold_time(self.shortcut, u)


def _stages(
  block: type[_Residual],
  factory: _layers.LayerFactory,
  cin: int,
  stages: Sequence[Stage],
  *,
  rngs: nnx.Rngs,
) -> nnx.List:
  """The residual blocks; the first block of a stage has the stage's stride."""
  blocks = []
  for depth, width, stride in stages:
    for i in range(depth):
      blocks.append(block(factory, cin, width, stride if i == 0 else 1, rngs=rngs))
      cin = width
  return nnx.List(blocks)


class SpikingResNet(nnx.Module):
  """CIFAR spiking ResNet (ResNet-19, ResNet-18) with `BasicBlock`s.

  ``stem conv3x3 → tdBN → neuron → blocks → global average pool → [FC → neuron] → FC``.

  Args:
    factory: the `LayerFactory` (neuron type, dtype, tdBN axis).
    in_channels: C of the input.
    num_classes: number of logits.
    stem_width: channels of the stem convolution.
    stages: ``(blocks, width, stride)`` per stage.
    hidden: sizes of spiking FC layers before the classifier.
    rngs: parameter initialisation.
  """

  def __init__(
    self,
    factory: _layers.LayerFactory,
    *,
    in_channels: int,
    num_classes: int,
    stem_width: int,
    stages: Sequence[Stage],
    hidden: tuple[int, ...] = (),
    rngs: nnx.Rngs,
  ):
    self.stem = factory.encoder(
      factory.conv_bn(in_channels, stem_width, 3, rngs=rngs), in_channels=in_channels
    )
    self.stem_neuron = factory.spiking(stem_width, rngs=rngs)
    self.blocks = _stages(BasicBlock, factory, stem_width, stages, rngs=rngs)
    self.classifier = _layers.Classifier(factory, stages[-1][1], hidden, num_classes, rngs=rngs)
    self.remat = factory.remat

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of images ``[B, H, W, C]`` or frames ``[T, B, H, W, C]``."""
    x = _layers.fire(self.stem_neuron, self.stem(x))
    x = _layers.run_blocks(self.blocks, x, remat=self.remat)
    return self.classifier(_layers.global_avg_pool(x))


class MSResNet(nnx.Module):
  """ImageNet-style spiking ResNet with membrane shortcuts (ResNet-18MS, ResNet-34MS).

  ``stem conv7x7/2 → tdBN → maxpool 3x3/2 → MSBlocks → neuron-free global average pool
  of the last membrane → FC`` (as Hu et al.'s MS-ResNet; the stem has no neuron because
  every block starts with one). Any input size works: the pooling at the end is global.

  Args:
    factory, in_channels, num_classes, stem_width, stages, rngs: as in `SpikingResNet`.
  """

  def __init__(
    self,
    factory: _layers.LayerFactory,
    *,
    in_channels: int,
    num_classes: int,
    stem_width: int,
    stages: Sequence[Stage],
    rngs: nnx.Rngs,
  ):
    stem = factory.conv_bn(
      in_channels, stem_width, 7, stride=2, pool=_layers.max_pool_3x3, rngs=rngs
    )
    self.stem = factory.encoder(stem, in_channels=in_channels)
    self.blocks = _stages(MSBlock, factory, stem_width, stages, rngs=rngs)
    self.classifier = _layers.Classifier(factory, stages[-1][1], (), num_classes, rngs=rngs)
    self.remat = factory.remat

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of images ``[B, H, W, C]`` or frames ``[T, B, H, W, C]``."""
    u = _layers.run_blocks(self.blocks, self.stem(x), remat=self.remat)
    return self.classifier(_layers.global_avg_pool(u))
