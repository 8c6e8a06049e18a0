"""Small spiking CNNs on MNIST-like data, sized for a CPU: one helper for every variant.

``get_config("<dataset>,<neuron>")``, e.g. ``--config configs/small.py:mnist,glif``; the
named files (``mnist_glif.py``, ``fmnist_klif.py``, ...) call it. ``cnn_small`` (width 16,
T = 4) with Adam, batch 128, 2 epochs, neuron parameters trained as the GLIF authors'
``--tunable-lif``: about four minutes on a 2-core CPU.
"""

from ml_collections import config_dict

from configs import default

DATASETS = {"mnist": "mnist", "fmnist": "fashion_mnist", "cifar10": "cifar10"}


def small_config(dataset: str, neuron: str) -> config_dict.ConfigDict:
  """``cnn_small`` with ``neuron`` on ``dataset`` (a key of `DATASETS`), Adam, 2 epochs."""
  config = default.get_config()
  config.dataset = DATASETS[dataset]
  config.model = "cnn_small"
  config.neuron = neuron
  config.width = 16
  config.timesteps = 4
  # the authors' --tunable-lif: neuron parameters at the weights' lr, gates at a tenth of it
  # (as good as 0.1 / 1 on MNIST in 2 epochs, and the gates' lr is the same: README, "Results")
  default.set_optimizer(
    config, "adam", 2e-3, weight_decay=0.0, neuron_lr_scale=1.0, gate_lr_scale=0.1
  )
  config.batch_size = 128
  config.eval_batch_size = 500
  config.num_epochs = 2
  return config


def get_config(arg: str = "mnist,glif") -> config_dict.ConfigDict:
  """The config of ``"<dataset>,<neuron>"``."""
  dataset, neuron = arg.split(",")
  return small_config(dataset, neuron)
