"""GLIF paper: ResNet-34MS on ImageNet, T = 6 (see `configs/imagenet.py`)."""

from configs import imagenet


def get_config():
  """The config."""
  return imagenet.imagenet_config("resnet34ms")
