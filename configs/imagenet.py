"""The GLIF paper's ImageNet runs: MS-ResNets with GLIF, T = 6.

``get_config("<model>")`` with model ``resnet18ms`` or ``resnet34ms``; the named files call
it. The data are TFDS's ``imagenet2012`` built from the user's manual download (see
`glif_jax.data`).

The authors' README command (``Ikarosy/Gated-LIF`` at ac20aa7), for ResNet-18MS::

    torch.distributed.run --nproc_per_node N train.py --epoch 150 --batch-size 50
        --learning-rate 0.1 --soft-mode --MS18 --channel-wise --randomgate --tunable-lif
        --t 6 --imagenet

with ``train.py``'s defaults: SGD momentum 0.9, weight decay 4e-5 on the weights only,
cosine to 0 over the 150 epochs; on ImageNet ``--tunable-lif`` keeps the gates at the full
lr (``init_lr_diff = 1``), hence ``neuron_lr_scale = gate_lr_scale = 1``. ``--batch-size
50`` is per GPU and N is not given: the global batch here assumes 8 GPUs. Their data:
RandomResizedCrop 224 (scale 0.2–1) + flip for training, resize 256 + centre crop 224 for
evaluation (the data pipeline's). ResNet-34MS has no command in their README; it gets the
same recipe.
"""

from ml_collections import config_dict

from configs import default

GPUS = 8  # not in the authors' README: --batch-size 50 is per process
TIMESTEPS = 6


def imagenet_config(model: str) -> config_dict.ConfigDict:
  """GLIF ``model`` on ImageNet at T = 6 with the authors' recipe."""
  config = default.get_config()
  config.dataset = "imagenet2012"
  config.model = model
  config.neuron = "glif"
  config.neuron_options = config_dict.ConfigDict({"gate_init": "random", "gating": "soft"})
  config.timesteps = TIMESTEPS
  default.set_optimizer(config, "sgd", 0.1, weight_decay=4e-5, neuron_lr_scale=1.0)
  config.batch_size = 50 * GPUS
  config.eval_batch_size = 50 * GPUS
  config.num_epochs = 150
  return config


def get_config(arg: str = "resnet18ms") -> config_dict.ConfigDict:
  """The config of ``"<model>"``."""
  return imagenet_config(arg)
