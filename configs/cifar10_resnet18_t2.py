"""GLIF paper: ResNet-18 on CIFAR-10, T = 2 (see `configs/cifar.py`)."""

from configs import cifar


def get_config():
  """The config."""
  return cifar.cifar_config("cifar10", "resnet18", 2)
