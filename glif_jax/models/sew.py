"""SEW-ResNets for event frames: the GLIF paper's CIFAR10-DVS net and SEW's DVS128 Gesture net.

One class, `SEWResNet`, after ``ResNetN_GLIF`` in ``cifar10dvs/smodels.py`` of the GLIF
authors (itself ``ResNetN`` of SEW-ResNet's code, Fang et al. 2021); for 2-channel
(polarity) frames and a list of ``(width multiplier, pool after)`` per SEW block::

    conv1x1 2→w → BN → neuron                      # up-projection of the input
    per block:  [conv1x1 → BN → neuron when the width changes]
                SEW block, [2×2 pooling]
    flatten (C, H, W) → FC with bias → classes

    SEW block(c):  out = neuron(BN(conv3x3(neuron(BN(conv3x3(x)))))) + x      (ADD)

BN is PyTorch's ``BatchNorm2d`` on ``[T·B, C, H, W]`` (statistics over T·B·H·W, α·V_th = 1),
weights keep PyTorch's default initialisation (U(±1/√fan_in) kernels and FC bias), as
their code does not re-initialise them. They apply the FC to the mean over T of the
flattened spikes; here it runs per step and the readout is the mean over T of the logits,
which is the same number (the FC is affine).

Variants (module-level partials, plain BN as both codes):

- `SEWResNetDVS`, their ``SEWResNet_GLIF_dsr`` (CIFAR10-DVS, 48×48 frames): w = 64, blocks
  64, 64, 64, 64, 128, 128, 128 with average pooling after blocks 4–7 only (48 → 3), FC
  128·3·3 → classes; GLIF from `DVS_GLIF`.
- `SEWResNetGesture`, SEW-ResNet's DVS128 Gesture ``SEWResNet`` (128×128 frames): w = 32,
  seven blocks of 32, max pooling after every block (128 → 1), FC 32 → classes; PLIF from
  `SEW_PLIF`.

Why not one class with `glif_jax.models.resnet.SpikingResNet`: besides the stem, encoder
and block loop that `_layers` already shares, everything differs — stride-free blocks with
separate 1×1 width changes and pooling layers between them (indexed ``layers.i`` as the
authors' ``nn.Sequential``, which the checkpoint loader maps), a flatten in (C, H, W) order
and a biased FC instead of a global pool and their bias-free head, PyTorch's default
initialisers, and a fixed input size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import nn as snn
from glif_jax import surrogates
from glif_jax.models import _layers

# The neuron of the GLIF authors' CIFAR10-DVS code (cifar10dvs/layers.py, not the CIFAR
# one): V_th = 0.99999, τ = 0.5, conductance 0.9, linear decay V_th/(2·16) for their
# fixed steps = 16, reset potential = V_th, gate logits from U(−0.1, 0.1) whatever gate
# list the network passes.
DVS_GLIF = {
  "tau": 0.5,
  "v_th": 0.99999,
  "leak": 0.99999 / 32,
  "v_reset": 0.99999,
  "conduct": 0.9,
  "gate_init": "random",
}
# SEW-ResNet's DVS128 Gesture neuron: SpikingJelly's MultiStepParametricLIFNode(init_tau=2,
# detach_reset=True) of the cext backend (V_th 1, V_reset 0, ATan surrogate with α = 2).
SEW_PLIF = {"init_tau": 2.0, "detach_reset": True, "surrogate": surrogates.atan(2.0)}

# (width multiplier, pool after the block) of SEWResNet_GLIF_dsr's 7 SEW blocks.
DVS_BLOCKS = ((1, False), (1, False), (1, False), (1, True), (2, True), (2, True), (2, True))
GESTURE_BLOCKS = ((1, True),) * 7
POOLS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "avg": _layers.avg_pool,
  "max": _layers.max_pool,
}


def _torch_linear_bias(fan_in: int) -> nnx.Initializer:
  """PyTorch's default Linear bias: U(±1/√fan_in)."""
  bound = fan_in**-0.5

  def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class SEWBlock(nnx.Module):
  """Spike-element-wise residual block with ADD: ``conv_spike(conv_spike(x)) + x``.

  The output is a spike count in {0, 1, 2} per element; the block keeps its width.
  """

  def __init__(
    self,
    channels: int,
    *,
    conv: Callable[..., nnx.Conv],
    norm: _layers.BoundNormDef,
    neuron: _layers.BoundNeuronDef,
  ):
    def conv_spike() -> _layers.ConvSpike:
      layer = _layers.ConvNorm(conv(channels, channels, (3, 3), padding=1), norm(channels))
      return _layers.ConvSpike(layer, neuron(channels))

    self.conv1 = conv_spike()
    self.conv2 = conv_spike()

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv2(self.conv1(x)) + x


def _conv1x1_norm(layers: _layers.Layers, cin: int, cout: int) -> _layers.ConvNorm:
  return _layers.ConvNorm(layers.conv(cin, cout, (1, 1), padding=0), layers.norm(cout))


def _sew_layers(
  layers: _layers.Layers,
  blocks: Sequence[tuple[int, bool]],
  width: int,
  pool: Callable[[jax.Array], jax.Array],
) -> list[nnx.Module]:
  """Per block: a 1×1 conv-BN-neuron where the width changes, the SEW block, its pooling."""
  out = []
  cin = width * blocks[0][0]
  for multiplier, pooled in blocks:
    cout = width * multiplier
    if cout != cin:
      out.append(_layers.ConvSpike(_conv1x1_norm(layers, cin, cout), layers.neuron(cout)))
    out.append(SEWBlock(cout, conv=layers.conv, norm=layers.norm, neuron=layers.neuron))
    if pooled:
      out.append(snn.TimeFolded(pool))
    cin = cout
  return out


def _torch_linear(fan_in: int, fan_out: int, *, dtype: Any, rngs: nnx.Rngs) -> nnx.Linear:
  """``nn.Linear`` with PyTorch's default initialisation: weight and bias U(±1/√fan_in)."""
  return nnx.Linear(
    fan_in,
    fan_out,
    kernel_init=_layers.TORCH_DEFAULT,
    bias_init=_torch_linear_bias(fan_in),
    dtype=dtype,
    rngs=rngs,
  )


@_layers.init_signature
class SEWResNet(nnx.Module):
  """SEW-ResNet for event frames; see the module docstring for the layout.

  Args:
    blocks: ``(width multiplier, pool after)`` per SEW block.
    width: base width w.
    pool: ``"avg"`` or ``"max"`` (2×2, stride 2).
    input_size: side H = W of the frames (the flatten fixes it).
    in_channels: C of the input (2 polarities).
    num_classes: number of logits.
    timesteps: T.
    norm: ``"bn"`` (theirs) or ``"tdbn"``.
    neuron, neuron_options, neuron_defaults: as in `glif_jax.models.resnet.SpikingResNet`.
    remat: checkpoint each block.
    bn_axis_name, dtype, rngs: as in `glif_jax.models.resnet.SpikingResNet`.
  """

  has_norm: ClassVar[bool] = True
  fixed_input_size: ClassVar[bool] = True  # the flatten fixes it
  has_blocks: ClassVar[bool] = True

  def __init__(
    self,
    *,
    blocks: Sequence[tuple[int, bool]],
    width: int,
    pool: str,
    input_size: int,
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
    if pool not in POOLS:
      raise ValueError(f"pool must be one of {tuple(POOLS)}, got {pool!r}")
    side = _layers.pooled_side(input_size, sum(p for _, p in blocks))
    layers = _layers.network_layers(
      _layers.TORCH_DEFAULT,
      input_size=input_size,
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
    cin = width * blocks[0][0]
    self.stem = layers.encoder(_conv1x1_norm(layers, in_channels, cin))
    self.stem_neuron = layers.neuron(cin)
    self.layers = nnx.List(_sew_layers(layers, blocks, width, POOLS[pool]))
    features = width * blocks[-1][0] * side * side
    self.classifier = _torch_linear(features, num_classes, dtype=layers.dtype, rngs=layers.rngs)
    self.remat = remat

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of frames ``[T, B, H, W, C]`` (or static ``[B, H, W, C]``)."""
    x = _layers.fire(self.stem_neuron, self.stem(x))
    x = _layers.run_blocks(self.layers, x, remat=self.remat)
    x = snn.fold_time(_layers.flatten_chw, x)
    return snn.fold_time(self.classifier, x).astype(jnp.float32)


SEWResNetDVS = functools.partial(
  SEWResNet,
  blocks=DVS_BLOCKS,
  width=64,
  pool="avg",
  input_size=48,
  norm="bn",
  neuron_defaults={"glif": DVS_GLIF, "glif_f": DVS_GLIF},
)
SEWResNetGesture = functools.partial(
  SEWResNet,
  blocks=GESTURE_BLOCKS,
  width=32,
  pool="max",
  input_size=128,
  norm="bn",
  neuron="plif",
  neuron_defaults={"plif": SEW_PLIF},
)
