"""GLIF paper: the 7-block SEW-style network on CIFAR10-DVS, T = 16 frames of 48×48.

The frames are binned by event number (``data_options``); the rest is the CIFAR recipe
of ``default.py`` (the paper gives no other DVS hyper-parameters).
"""

from configs import default

TIMESTEPS = 16


def get_config():
  """The config."""
  config = default.get_config()
  config.dataset = "cifar10_dvs"
  config.data_options.num_frames = TIMESTEPS
  config.data_options.split_by = "number"
  config.data_options.size = 48
  config.model = "sew_dvs"
  config.timesteps = TIMESTEPS
  config.eval_batch_size = 64
  return config
