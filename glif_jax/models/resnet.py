"""Spiking ResNets of the GLIF paper: ResNet-19/18 (CIFAR) and ResNet-18MS/34MS (ImageNet).

Layer for layer the GLIF authors' networks (``networks_for_CIFAR.py``,
``networks_for_ImageNet.py`` and ``blocks.py`` of ``Ikarosy/Gated-LIF``, commit ac20aa7):

- `BasicBlock` (their ``BasicBlock_CW``, post-activation)::

      out = conv3x3(stride) → BN → neuron → conv3x3 → BN(α=1/√2)
      out = neuron(out + shortcut(x))

  where the shortcut is BN(α=1/√2) alone when the shape is kept (they normalise the
  identity branch too) and conv1x1(stride) → BN(α=1/√2) when it changes.
- `MSBlock` (their ``BasicBlock_CW_MS``, membrane shortcut)::

      out = neuron → conv3x3(stride) → BN → neuron → conv3x3 → BN(α=1/√2)
      out = out + shortcut(x)

  with the same shortcut, applied to the block's input itself (not to its spikes); the
  residual stream between blocks is never binarised.

One class, `SpikingResNet`, by block and stem. Every convolution is bias-free with padding
k // 2 (the ImageNet stem: padding 1), every neuron channel-wise, and the head is theirs
(`ResNetHead`). The variants are module-level partials carrying their layout and norm:
`ResNet19`, `ResNet18` (tdBN), `ResNet18MS`, `ResNet34MS` (plain BN, as their ImageNet runs).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import nn as snn
from glif_jax.models import _layers

# The authors' heads: FC 512→256 → FC 256→classes for at most this many classes, else one FC.
TWO_FC_MAX_CLASSES = 50
TWO_FC_HIDDEN = 256


class ResNetHead(nnx.Module):
  """The authors' head on pooled features ``[T, B, F] -> [T, B, classes]``.

  Bias-free linears initialised from N(0, 0.01²), no neuron between them: for at most 50
  classes FC F→256 → FC 256→classes, for more one FC F→classes (``lastave``).

  Args:
    features: F.
    num_classes: number of logits.
    dtype: compute dtype.
    rngs: parameter initialisation.
  """

  def __init__(self, features: int, num_classes: int, *, dtype: Any, rngs: nnx.Rngs):
    sizes = (features, TWO_FC_HIDDEN) if num_classes <= TWO_FC_MAX_CLASSES else (features,)
    sizes += (num_classes,)
    linear = functools.partial(
      nnx.Linear, use_bias=False, kernel_init=_layers.LINEAR_NORMAL, dtype=dtype, rngs=rngs
    )
    self.fcs = nnx.List([linear(a, b) for a, b in itertools.pairwise(sizes)])

  def __call__(self, x: jax.Array) -> jax.Array:
    for fc in self.fcs:
      x = snn.fold_time(fc, x)
    return x.astype(jnp.float32)


def _shortcut(
  cin: int, cout: int, stride: int, *, conv: Callable[..., nnx.Conv], norm: _layers.BoundNormDef
) -> nnx.Module:
  """BN(α=1/√2), after a strided 1×1 convolution when the shape changes."""
  if cin == cout and stride == 1:
    return norm(cout, residual=True)
  return _layers.ConvNorm(
    conv(cin, cout, (1, 1), strides=stride, padding=0), norm(cout, residual=True)
  )


class _Residual(nnx.Module):
  """The two conv-BN layers, middle neuron and shortcut common to both block types."""

  def __init__(
    self,
    cin: int,
    cout: int,
    stride: int,
    *,
    conv: Callable[..., nnx.Conv],
    norm: _layers.BoundNormDef,
    neuron: _layers.BoundNeuronDef,
  ):
    self.conv1 = _layers.ConvSpike(
      _layers.ConvNorm(conv(cin, cout, (3, 3), strides=stride, padding=1), norm(cout)),
      neuron(cout),
    )
    self.conv2 = _layers.ConvNorm(conv(cout, cout, (3, 3), padding=1), norm(cout, residual=True))
    self.shortcut = _shortcut(cin, cout, stride, conv=conv, norm=norm)

  def residual(self, x: jax.Array) -> jax.Array:
    """conv → BN → neuron → conv → BN on spikes ``x [T, B, H, W, C]``."""
    conv2 = functools.partial(self.conv2, spikes_in=True)
    return snn.fold_time(conv2, self.conv1(x, spikes_in=True))


class BasicBlock(_Residual):
  """Spikes in, spikes out: ``neuron(residual(x) + shortcut(x))``."""

  def __init__(self, cin, cout, stride, *, conv, norm, neuron):
    super().__init__(cin, cout, stride, conv=conv, norm=norm, neuron=neuron)
    self.neuron2 = neuron(cout)

  def __call__(self, x: jax.Array) -> jax.Array:
    shortcut = functools.partial(self.shortcut, spikes_in=True)
    return _layers.fire(self.neuron2, self.residual(x) + snn.fold_time(shortcut, x))


class MSBlock(_Residual):
  """Membrane in, membrane out: ``residual(neuron(u)) + shortcut(u)``."""

  def __init__(self, cin, cout, stride, *, conv, norm, neuron):
    super().__init__(cin, cout, stride, conv=conv, norm=norm, neuron=neuron)
    self.neuron0 = neuron(cin)

  def __call__(self, u: jax.Array) -> jax.Array:
    return self.residual(_layers.fire(self.neuron0, u)) + snn.fold_time(self.shortcut, u)


def _stages(
  block: type[BasicBlock | MSBlock],
  cin: int,
  width: int,
  stage_sizes: Sequence[int],
  stage_strides: Sequence[int],
  *,
  conv: Callable[..., nnx.Conv],
  norm: _layers.BoundNormDef,
  neuron: _layers.BoundNeuronDef,
) -> nnx.List:
  """The residual blocks: stage i has width·2^i channels; its first block its stride."""
  if len(stage_sizes) != len(stage_strides):
    raise ValueError(
      f"stage_sizes {tuple(stage_sizes)} and stage_strides {tuple(stage_strides)} "
      "must have the same length"
    )
  blocks = []
  for i, (depth, stride) in enumerate(zip(stage_sizes, stage_strides)):
    for j in range(depth):
      cout = width * 2**i
      blocks.append(block(cin, cout, stride if j == 0 else 1, conv=conv, norm=norm, neuron=neuron))
      cin = cout
  return nnx.List(blocks)


class Stem(NamedTuple):
  """The first convolution's kernel side, stride and padding."""

  kernel: int
  stride: int
  padding: int


CIFAR_STEM = Stem(kernel=3, stride=1, padding=1)
# Their ImageNet stem: 7×7, stride 2, padding 1 (not 3), no max-pool.
IMAGENET_STEM = Stem(kernel=7, stride=2, padding=1)


@_layers.init_signature
class SpikingResNet(nnx.Module):
  """The GLIF authors' spiking ResNets, by block and stem.

  ``stem conv → BN → neuron → blocks → global average pool → ResNetHead``. With
  `BasicBlock` and `CIFAR_STEM`: their CIFAR ``ResNet_19_cifar_CW``, ``ResNet_18_stand_CW``.
  With `MSBlock` and `IMAGENET_STEM`: their ImageNet ``ResNet_*_stand_CW_MS`` (membrane
  shortcut; every stage strided, 224 → 110 → 55, 28, 14, 7; the stem's spikes enter the
  first block, whose own neuron runs on them; the pool averages the last membrane).

  Args:
    block_cls: `BasicBlock` or `MSBlock`.
    stem: the stem convolution's `Stem`.
    stage_sizes: blocks per stage.
    stage_strides: stride of each stage's first block.
    width: stem width; stage i has width·2^i channels.
    in_channels: C of the input.
    num_classes: number of logits.
    timesteps: T.
    norm: ``"tdbn"`` or ``"bn"``.
    neuron: one of `glif_jax.models.NEURON_NAMES`.
    neuron_options: keyword arguments of the neuron module (`glif_jax.nn.GLIF`, ...); they
      override ``neuron_defaults``.
    neuron_defaults: initial values per neuron name (None: the neuron modules').
    remat: checkpoint each residual block.
    bn_axis_name: pmap/shard_map axis over which BN averages batch statistics.
    dtype: compute dtype; parameters stay float32.
    rngs: parameter initialisation.
  """

  has_norm: ClassVar[bool] = True  # takes ``norm`` and ``bn_axis_name``
  fixed_input_size: ClassVar[bool] = False  # pools globally: any input size
  has_blocks: ClassVar[bool] = True  # takes ``remat``

  def __init__(
    self,
    *,
    block_cls: type[BasicBlock | MSBlock],
    stem: Stem,
    stage_sizes: Sequence[int],
    stage_strides: Sequence[int],
    width: int,
    in_channels: int,
    num_classes: int,
    timesteps: int,
    norm: str,
    neuron: str = "glif",
    neuron_options: Mapping[str, Any] | None = None,
    neuron_defaults: _layers.NeuronDefaults | None = None,
    remat: bool = False,
    bn_axis_name: str | None = None,
    dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
  ):
    layers = _layers.network_layers(
      _layers.KAIMING_FAN_OUT,
      input_size=None,
      in_channels=in_channels,
      timesteps=timesteps,
      norm=norm,
      neuron=neuron,
      neuron_options=neuron_options,
      neuron_defaults=neuron_defaults,
      bn_axis_name=bn_axis_name,
      dtype=dtype,
      rngs=rngs,
    )
    k = (stem.kernel, stem.kernel)
    first = layers.conv(in_channels, width, k, strides=stem.stride, padding=stem.padding)
    self.stem = layers.encoder(_layers.ConvNorm(first, layers.norm(width)))
    self.stem_neuron = layers.neuron(width)
    self.block_cls = block_cls
    self.blocks = _stages(
      block_cls,
      width,
      width,
      stage_sizes,
      stage_strides,
      conv=layers.conv,
      norm=layers.norm,
      neuron=layers.neuron,
    )
    features = width * 2 ** (len(stage_sizes) - 1)
    self.classifier = ResNetHead(features, num_classes, dtype=layers.dtype, rngs=layers.rngs)
    self.remat = remat

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of images ``[B, H, W, C]`` or frames ``[T, B, H, W, C]``."""
    x = _layers.fire(self.stem_neuron, self.stem(x))
    x = _layers.run_blocks(self.blocks, x, remat=self.remat)
    return self.classifier(_layers.global_avg_pool(x))


_cifar = functools.partial(SpikingResNet, block_cls=BasicBlock, stem=CIFAR_STEM, norm="tdbn")
ResNet19 = functools.partial(_cifar, stage_sizes=(3, 3, 2), stage_strides=(1, 2, 2), width=128)
# Stage strides 1/1/2/2 as their ResNet_18_stand_CW (32×32 → 32, 32, 16, 8).
ResNet18 = functools.partial(_cifar, stage_sizes=(2, 2, 2, 2), stage_strides=(1, 1, 2, 2), width=64)
# Their ImageNet runs convert every tdBatchNorm to torch.nn.SyncBatchNorm (train.py:
# convert_sync_batchnorm before DDP, and again before loading for --eval), which keeps the
# statistics, weight and bias but drops tdBN's α·V_th: plain BN.
_imagenet = functools.partial(
  SpikingResNet,
  block_cls=MSBlock,
  stem=IMAGENET_STEM,
  stage_strides=(2, 2, 2, 2),
  width=64,
  norm="bn",
)
ResNet18MS = functools.partial(_imagenet, stage_sizes=(2, 2, 2, 2))
ResNet34MS = functools.partial(_imagenet, stage_sizes=(3, 4, 6, 3))
