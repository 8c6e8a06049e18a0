"""Permuted sequential MNIST (rows in a fixed shuffled order, T = 28) with LIF, 2 epochs (see
`configs/smnist_recipe.py`)."""

from configs import smnist_recipe


def get_config():
  """The config."""
  return smnist_recipe.smnist_config("lif", "permuted")
