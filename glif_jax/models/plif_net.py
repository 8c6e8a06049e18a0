"""The PLIF paper's networks (Fang et al., ICCV 2021), as SpikingJelly ships them.

One class, `PLIFNet`, after ``activation_based/model/parametric_lif_net.py`` of SpikingJelly
(``MNISTNet``, ``FashionMNISTNet``, ``NMNISTNet``, ``CIFAR10Net``, ``CIFAR10DVSNet``,
``DVSGestureNet``)::

    per stage:  (conv3x3 → BN → neuron) × convs,  2×2 max pool          # width w throughout
    flatten (C, H, W) → dropout → FC F→hidden → neuron → dropout
    → FC hidden→10·classes → neuron → voting (mean of each class's group of 10 neurons)

Convolutions are bias-free, FCs have a bias, BN is PyTorch's ``BatchNorm2d`` and every
layer keeps PyTorch's default initialisation (as SpikingJelly). Dropout is SpikingJelly's
``layer.Dropout`` (`SharedDropout`): one mask per sample and feature, drawn at the first
step and shared by all T steps. The output per step is the voting layer's, a firing rate
in [0, 1] per class; the logits ``[T, B, classes]`` are these.

Variants (module-level partials; SpikingJelly's defaults, plain BN, PLIF or LIF from
`PLIF_PAPER`):

- `PLIFNetMNIST` (MNIST and Fashion-MNIST, 28×28×1): stages (1, 1), w = 128, hidden 2048.
- `PLIFNetNMNIST` (N-MNIST, 34×34×2 frames): as MNIST; 34 → 17 → 8.
- `PLIFNetCIFAR10` (32×32×3): stages (3, 3), w = 256, hidden 2048.
- `PLIFNetCIFAR10DVS` (128×128×2 frames): stages (1, 1, 1, 1), w = 128, hidden 512.
- `PLIFNetGesture` (DVS128 Gesture, 128×128×2 frames): five stages of 1, w = 128, hidden 512.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import nn as snn
from glif_jax import surrogates
from glif_jax.models import _layers
from glif_jax.models.sew import SEW_PLIF, _torch_linear

VOTES = 10  # output neurons per class (SpikingJelly's VotingLayer(10))
DROPOUT = 0.5
# The PLIF paper's neurons (their codes/models.py and README commands): PLIFNode with
# init_tau 2 or LIFNode with tau 2, both V_th 1, V_reset 0, detached reset, ATan (α = 2).
PLIF_PAPER = {
  "plif": SEW_PLIF,
  "lif": {"tau": 2.0, "detach_reset": True, "surrogate": surrogates.atan(2.0)},
}


def vote(spikes: jax.Array, votes: int = VOTES) -> jax.Array:
  """SpikingJelly's ``VotingLayer``: ``[..., classes·votes] -> [..., classes]``, group means."""
  return jnp.mean(spikes.reshape(*spikes.shape[:-1], -1, votes), axis=-1)


class DropoutKey(nnx.Variable):
  """A dropout layer's raw uint32 key data or its draw count (not nnx's typed ``RngKey``)."""


class SharedDropout(nnx.Module):
  """SpikingJelly's ``layer.Dropout`` on ``x [T, B, ...]``: one mask per sample, shared over T.

  Kept elements are scaled by ``1/(1 − rate)``, as ``F.dropout``. Each training call draws
  a new mask from the key of the ``rngs``' ``dropout`` stream (``default`` when it has none)
  folded with a call count, as `nnx.RngStream` does; the key is stored as raw uint32 data
  because the train state is fetched to NumPy and checkpointed, which take no typed keys.
  Off after ``model.eval()`` (``deterministic``).

  Args:
    rate: the probability of dropping an element.
    rngs: draws the layer's key.
  """

  def __init__(self, rate: float, *, rngs: nnx.Rngs):
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    self.rate = rate
    self.deterministic = False
    self.key = DropoutKey(jax.random.key_data(rngs.dropout()))
    self.count = DropoutKey(jnp.zeros((), jnp.uint32))

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.deterministic or self.rate == 0.0:
      return x
    key = jax.random.fold_in(jax.random.wrap_key_data(self.key[...]), self.count[...])
    self.count[...] += 1
    keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape[1:])
    return jnp.where(keep, x / (1.0 - self.rate), 0.0).astype(x.dtype)


@_layers.init_signature
class PLIFNet(nnx.Module):
  """A PLIF-paper network; see the module docstring for the layout.

  Args:
    stages: convolutions before each 2×2 max pool.
    width: w, the channels of every convolution.
    hidden: units of the hidden spiking FC layer.
    input_size: side H = W of the input (the flatten fixes it).
    in_channels: C of the input.
    num_classes: number of logits; the last FC has ``VOTES · num_classes`` neurons.
    dropout: the drop probability of both dropout layers.
    timesteps: T.
    norm: ``"bn"`` (theirs) or ``"tdbn"``.
    neuron, neuron_options, neuron_defaults: as in `glif_jax.models.resnet.SpikingResNet`.
    remat: checkpoint each convolution layer.
    bn_axis_name, dtype: as in `glif_jax.models.resnet.SpikingResNet`.
    rngs: parameter initialisation and the ``dropout`` stream.
  """

  has_norm: ClassVar[bool] = True
  fixed_input_size: ClassVar[bool] = True  # the flatten fixes it
  has_blocks: ClassVar[bool] = True

  def __init__(
    self,
    *,
    stages: Sequence[int],
    width: int,
    hidden: int,
    input_size: int,
    in_channels: int,
    num_classes: int,
    timesteps: int,
    norm: str,
    neuron: str = "glif",
    neuron_options: Mapping[str, Any] | None = None,
    neuron_defaults: _layers.NeuronDefaults | None = None,
    dropout: float = DROPOUT,
    remat: bool = False,
    bn_axis_name: str | None = None,
    dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
  ):
    side = _layers.pooled_side(input_size, len(stages))
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

    def conv_norm(cin: int) -> _layers.ConvNorm:
      return _layers.ConvNorm(layers.conv(cin, width, (3, 3), padding=1), layers.norm(width))

    self.stem = layers.encoder(conv_norm(in_channels))
    self.stem_neuron = layers.neuron(width)
    blocks = []
    for index, convs in enumerate(stages):
      blocks += [
        _layers.ConvSpike(conv_norm(width), layers.neuron(width))
        for _ in range(convs - (index == 0))
      ]
      blocks.append(snn.TimeFolded(_layers.max_pool))
    self.layers = nnx.List(blocks)
    linear = functools.partial(_torch_linear, dtype=layers.dtype, rngs=layers.rngs)
    dropout_layer = functools.partial(SharedDropout, dropout, rngs=layers.rngs)
    self.dropout1 = dropout_layer()
    self.fc1 = linear(width * side * side, hidden)
    self.fc1_neuron = layers.neuron(hidden)
    self.dropout2 = dropout_layer()
    self.fc2 = linear(hidden, VOTES * num_classes)
    self.fc2_neuron = layers.neuron(VOTES * num_classes)
    self.remat = remat

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of images ``[B, H, W, C]`` or frames ``[T, B, H, W, C]``."""
    x = _layers.fire(self.stem_neuron, self.stem(x))
    x = _layers.run_blocks(self.layers, x, remat=self.remat)
    x = self.dropout1(snn.fold_time(_layers.flatten_chw, x))
    x = self.dropout2(_layers.fire(self.fc1_neuron, snn.fold_time(self.fc1, x)))
    x = _layers.fire(self.fc2_neuron, snn.fold_time(self.fc2, x))
    return vote(x).astype(jnp.float32)


_plif_net = functools.partial(
  PLIFNet,
  width=128,
  hidden=2048,
  input_size=28,
  norm="bn",
  neuron="plif",
  neuron_defaults=PLIF_PAPER,
)
PLIFNetMNIST = functools.partial(_plif_net, stages=(1, 1))
PLIFNetNMNIST = functools.partial(_plif_net, stages=(1, 1), input_size=34)
PLIFNetCIFAR10 = functools.partial(_plif_net, stages=(3, 3), width=256, input_size=32)
PLIFNetCIFAR10DVS = functools.partial(_plif_net, stages=(1,) * 4, hidden=512, input_size=128)
PLIFNetGesture = functools.partial(_plif_net, stages=(1,) * 5, hidden=512, input_size=128)
