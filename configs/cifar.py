"""The GLIF paper's CIFAR runs: one helper for every (data set, model, T).

``get_config("<dataset>,<model>,<T>")``, e.g. ``--config configs/cifar.py:cifar100,resnet18,6``;
the named files (``cifar10_resnet19_t4.py``, ...) call it.

The recipe is the authors' README training command (``Ikarosy/Gated-LIF`` at ac20aa7)::

    train.py --epoch 200 --batch-size 64 --learning-rate 0.1 --soft-mode [--stand18]
             --channel-wise --randomgate --tunable-lif --t T [--cifar100]

with ``train.py``'s defaults: SGD momentum 0.9, weight decay 4e-5 on the weights only,
cosine annealing to 0 over the 200 epochs; ``--randomgate``: gate logits from
U(−0.1, 0.1); ``--soft-mode``: soft gates; ``--tunable-lif``: no weight decay on neuron
parameters, the gates α, β, γ at lr / 10 and the other neuron parameters (τ, V_th, leak,
V_reset, conductance) at lr; random crop (4 px padding) + flip and their per-data-set
mean/std (the data pipeline's CIFAR defaults). Most are also ``default.py``'s values; they
are repeated here so the file says the whole recipe.
"""

from ml_collections import config_dict

from configs import default


def cifar_config(dataset: str, model: str, timesteps: int) -> config_dict.ConfigDict:
  """GLIF on ``dataset`` (cifar10 or cifar100) with ``model`` (resnet19 or resnet18) at T."""
  config = default.get_config()
  config.dataset = dataset
  config.model = model
  config.timesteps = timesteps
  config.neuron = "glif"
  config.neuron_options = config_dict.ConfigDict({"gate_init": "random", "gating": "soft"})
  config.crop_padding = 4
  config.flip = True
  default.set_optimizer(
    config, "sgd", 0.1, weight_decay=4e-5, neuron_lr_scale=1.0, gate_lr_scale=0.1
  )
  config.batch_size = 64
  config.num_epochs = 200
  return config


def get_config(arg: str = "cifar10,resnet19,4") -> config_dict.ConfigDict:
  """The config of ``"<dataset>,<model>,<T>"``."""
  dataset, model, timesteps = arg.split(",")
  return cifar_config(dataset, model, int(timesteps))
