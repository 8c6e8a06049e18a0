"""Sequential MNIST with a recurrent network: one helper for every variant.

``get_config("<neuron>,<order>")``, e.g. ``--config configs/smnist_recipe.py:glif,rows``; the
named files (``smnist_glif.py``, ``smnist_permuted_lif.py``, ``smnist_gru.py``, ...) call
it. The image's 28 rows are its 28 time steps of 28 inputs (``rows``), in a fixed shuffled
order (``permuted``), or its 784 pixels one by one (``pixels``, T = 784: for accelerators).
One recurrent hidden layer of 128 spiking neurons (``srnn_*``), or the GRU of as many
weights (``neuron="gru"``: ``gru_*``, 70 units); the readout is the mean over time of a
linear layer (`glif_jax.models.recurrent`). Adam 5e-3 with cosine decay, gradients clipped
at norm 1, batch 128, 2 epochs; the neuron parameters, GLIF's gates too, at the weights'
learning rate.
"""

from ml_collections import config_dict

from configs import default

ORDERS = {"rows": 28, "permuted": 28, "pixels": 28 * 28}  # order -> T
_MODELS = {"rows": "rows", "permuted": "rows_permuted", "pixels": "pixels"}


def smnist_config(neuron: str, order: str = "rows") -> config_dict.ConfigDict:
  """Sequential MNIST in ``order`` (a key of `ORDERS`) with ``neuron`` (or ``"gru"``)."""
  if neuron == "gru" and order == "pixels":
    raise ValueError("the GRU baseline reads rows (orders 'rows', 'permuted'), not 'pixels'")
  config = default.get_config()
  config.dataset = "mnist"
  family = "gru" if neuron == "gru" else "srnn"
  config.model = f"{family}_{_MODELS[order]}"
  if neuron != "gru":  # the GRU takes the default neuron name and uses none
    config.neuron = neuron
  config.width = 70 if neuron == "gru" else 128
  config.timesteps = ORDERS[order]
  default.set_optimizer(
    config, "adam", 5e-3, weight_decay=0.0, neuron_lr_scale=1.0, gate_lr_scale=1.0
  )
  config.grad_clip_norm = 1.0
  config.batch_size = 128
  config.eval_batch_size = 500
  config.num_epochs = 2
  return config


def get_config(arg: str = "glif,rows") -> config_dict.ConfigDict:
  """The config of ``"<neuron>,<order>"``."""
  neuron, order = arg.split(",")
  return smnist_config(neuron, order)
