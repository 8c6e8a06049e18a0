"""cnn_small with GLIF on MNIST, Adam, T = 4, 2 epochs (CPU-sized; see `configs/small.py`)."""

from configs import small


def get_config():
  """The config."""
  return small.small_config("mnist", "glif")
