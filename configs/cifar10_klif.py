"""KLIF paper's static-image setting: cnn_small with KLIF on CIFAR-10, Adam, 100 epochs.

See `configs/small.py`.
"""

from configs import small


def get_config():
  """The config."""
  config = small.small_config("cifar10", "klif")
  config.num_epochs = 100
  return config
