"""The model zoo: spiking ResNets, SEW-ResNet, small CNN and MLP, built by `create`.

Every model maps static images ``[B, H, W, C]`` or event frames ``[T, B, H, W, C]`` to
logits ``[T, B, classes]``. Models import nothing of data or training.
"""

from glif_jax.models.resnet import BasicBlock, MSBlock, MSResNet, SpikingResNet
from glif_jax.models.sew import SEWBlock, SEWResNet
from glif_jax.models.small import SpikingCNN, SpikingMLP
from glif_jax.models.zoo import MODEL_NAMES, NEURON_NAMES, create

__all__ = [
  "MODEL_NAMES",
  "NEURON_NAMES",
  "BasicBlock",
  "MSBlock",
  "MSResNet",
  "SEWBlock",
  "SEWResNet",
  "SpikingCNN",
  "SpikingMLP",
  "SpikingResNet",
  "create",
]
