"""The model zoo: the GLIF and PLIF papers' networks, small CNN, MLP and recurrent networks.

Every model maps static images ``[B, H, W, C]`` or event frames ``[T, B, H, W, C]`` to
logits ``[T, B, classes]``; `create` builds one by name. Variants are module-level
partials of a few classes carrying their paper's layout, norm and neuron defaults
(``ResNet19 = partial(SpikingResNet, block_cls=BasicBlock, ...)``); blocks are built from
layer definitions (`neuron_def`, `norm_def`). Models import nothing of data or training.
"""

from glif_jax.models._layers import neuron_def, norm_def
from glif_jax.models.authors import NonFiniteWeightsError, load_authors_checkpoint
from glif_jax.models.plif_net import (
  PLIFNet,
  PLIFNetCIFAR10,
  PLIFNetCIFAR10DVS,
  PLIFNetGesture,
  PLIFNetMNIST,
  PLIFNetNMNIST,
)
from glif_jax.models.recurrent import RecurrentGRU, RecurrentSNN
from glif_jax.models.resnet import (
  CIFAR_STEM,
  IMAGENET_STEM,
  BasicBlock,
  MSBlock,
  ResNet18,
  ResNet18MS,
  ResNet19,
  ResNet34MS,
  ResNetHead,
  SpikingResNet,
  Stem,
)
from glif_jax.models.sew import SEWBlock, SEWResNet, SEWResNetDVS, SEWResNetGesture
from glif_jax.models.small import SpikingCNN, SpikingMLP
from glif_jax.models.zoo import (
  FLATTENING_MODELS,
  MODEL_NAMES,
  NEURON_NAMES,
  NORM_NAMES,
  create,
)

__all__ = [
  "CIFAR_STEM",
  "FLATTENING_MODELS",
  "IMAGENET_STEM",
  "MODEL_NAMES",
  "NEURON_NAMES",
  "NORM_NAMES",
  "BasicBlock",
  "MSBlock",
  "NonFiniteWeightsError",
  "PLIFNet",
  "PLIFNetCIFAR10",
  "PLIFNetCIFAR10DVS",
  "PLIFNetGesture",
  "PLIFNetMNIST",
  "PLIFNetNMNIST",
  "RecurrentGRU",
  "RecurrentSNN",
  "ResNet18",
  "ResNet18MS",
  "ResNet19",
  "ResNet34MS",
  "ResNetHead",
  "SEWBlock",
  "SEWResNet",
  "SEWResNetDVS",
  "SEWResNetGesture",
  "SpikingCNN",
  "SpikingMLP",
  "SpikingResNet",
  "Stem",
  "create",
  "load_authors_checkpoint",
  "neuron_def",
  "norm_def",
]
