"""The wide 7-block SEW-ResNet of the GLIF paper's CIFAR10-DVS experiment.

Layout (after ``SEWResNet_GLIF`` in ``cifar10dvs/smodels.py`` of the GLIF authors'
``Gated-LIF`` repository, itself SEW-ResNet's CIFAR10-DVS network, Fang et al. 2021), for
base width w = 64 and 2-channel (polarity) event frames::

    conv1x1 2→w → tdBN → neuron                        # up-projection of the input
    SEW block(w), avgpool 2                             # ×4 (48 → 24 → 12 → 6 → 3)
    conv1x1 w→2w → tdBN → neuron                       # up-projection
    SEW block(2w)                                       # ×3
    global average pool → FC 2w→classes

    SEW block(c):  out = neuron(BN(conv3x3(neuron(BN(conv3x3(x)))))) + x     (ADD)

Deviation from the authors' code, and why: they pool (2×2 average) after all 7 blocks and
flatten before the FC, which needs a 128×128 input (SEW-ResNet's); at the 48×48 frames the
GLIF paper uses, the 6th pooling would reach 0×0. Here only the first 4 blocks pool
(48 → 3) and a global average pool feeds the FC, so any input size works. The authors'
BN is tdBN here (α = 1, V_th = 0.5), as in the rest of the zoo.
"""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from glif_jax import nn as snn
from glif_jax.models import _layers

# (width multiplier, pool after the block) of the 7 SEW blocks.
SEW_DVS_BLOCKS = ((1, True), (1, True), (1, True), (1, True), (2, False), (2, False), (2, False))


class SEWBlock(nnx.Module):
  """Spike-element-wise residual block with ADD: ``conv_spike(conv_spike(x)) + x``.

  The output is a spike count in {0, 1, 2} per element; the block keeps its width.
  """

  def __init__(self, factory: _layers.LayerFactory, channels: int, *, rngs: nnx.Rngs):
    self.conv1 = factory.conv_spike(channels, channels, 3, rngs=rngs)
    self.conv2 = factory.conv_spike(channels, channels, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv2(self.conv1(x)) + x


class SEWResNet(nnx.Module):
  """SEW-ResNet for event frames (``sew_dvs``); see the module docstring for the layout.

  Args:
    factory: the `LayerFactory`.
    in_channels: C of the input (2 polarities for CIFAR10-DVS).
    num_classes: number of logits.
    width: base width w.
    blocks: ``(width multiplier, pool)`` per SEW block.
    rngs: parameter initialisation.
  """

  def __init__(
    self,
    factory: _layers.LayerFactory,
    *,
    in_channels: int,
    num_classes: int,
    width: int,
    blocks: Sequence[tuple[int, bool]] = SEW_DVS_BLOCKS,
    rngs: nnx.Rngs,
  ):
    cin = width * blocks[0][0]
    self.stem = factory.encoder(
      factory.conv_bn(in_channels, cin, 1, rngs=rngs), in_channels=in_channels
    )
    self.stem_neuron = factory.spiking(cin, rngs=rngs)
    layers = []
    for multiplier, pool in blocks:
      cout = width * multiplier
      if cout != cin:
        layers.append(factory.conv_spike(cin, cout, 1, rngs=rngs))
      layers.append(SEWBlock(factory, cout, rngs=rngs))
      if pool:
        layers.append(snn.TimeFolded(_layers.avg_pool))
      cin = cout
    self.layers = nnx.List(layers)
    self.classifier = _layers.Classifier(factory, cin, (), num_classes, rngs=rngs)
    self.remat = factory.remat

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of frames ``[T, B, H, W, C]`` (or static ``[B, H, W, C]``)."""
    x = _layers.fire(self.stem_neuron, self.stem(x))
    x = _layers.run_blocks(self.layers, x, remat=self.remat)
    return self.classifier(_layers.global_avg_pool(x))
