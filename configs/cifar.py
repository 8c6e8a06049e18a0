"""The GLIF paper's CIFAR experiments: one helper for every (data set, model, T).

``get_config("<dataset>,<model>,<T>")``, e.g. ``--config configs/cifar.py:cifar100,resnet18,6``;
the named files (``cifar10_resnet19_t4.py``, ...) call it. The recipe is ``default.py``'s:
SGD momentum 0.9, lr 0.1 cosine to 0 over 200 epochs, batch 64, weight decay 4e-5,
random crop + flip (the data pipeline's default for CIFAR).
"""

from ml_collections import config_dict

from configs import default


def cifar_config(dataset: str, model: str, timesteps: int) -> config_dict.ConfigDict:
  """GLIF on ``dataset`` (cifar10 or cifar100) with ``model`` (resnet19 or resnet18) at T."""
  config = default.get_config()
  config.dataset = dataset
  config.model = model
  config.timesteps = timesteps
  return config


def get_config(arg: str = "cifar10,resnet19,4") -> config_dict.ConfigDict:
  """The config of ``"<dataset>,<model>,<T>"``."""
  dataset, model, timesteps = arg.split(",")
  return cifar_config(dataset, model, int(timesteps))
