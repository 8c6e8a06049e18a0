"""cnn_small with GLIF on Fashion-MNIST, Adam, T = 4, 2 epochs (see `configs/small.py`)."""

from configs import small


def get_config():
  """The config."""
  return small.small_config("fmnist", "glif")
