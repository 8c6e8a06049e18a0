"""Sequential MNIST pixel by pixel (T = 784) with GLIF: a run for accelerators (see
`configs/smnist_recipe.py`)."""

from configs import smnist_recipe


def get_config():
  """The config."""
  return smnist_recipe.smnist_config("glif", "pixels")
