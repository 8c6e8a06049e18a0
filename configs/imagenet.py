"""The GLIF paper's ImageNet runs: MS-ResNets with GLIF, T = 6.

``get_config("<model>")`` with model ``resnet18ms`` or ``resnet34ms``; the named files call
it. ImageNet cannot be had here and `glif_jax.data` has no ImageNet builder yet, so
``dataset = "imagenet"`` fails validation until one exists.
"""

from ml_collections import config_dict

from configs import default


def imagenet_config(model: str) -> config_dict.ConfigDict:
  """GLIF ``model`` on ImageNet at T = 6: SGD lr 0.1 cosine, 100 epochs, batch 256."""
  config = default.get_config()
  config.dataset = "imagenet"
  config.model = model
  config.timesteps = 6
  config.batch_size = 256
  config.num_epochs = 100
  return config


def get_config(arg: str = "resnet18ms") -> config_dict.ConfigDict:
  """The config of ``"<model>"``."""
  return imagenet_config(arg)
