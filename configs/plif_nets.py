"""The PLIF paper's runs (Fang et al., ICCV 2021): one helper for every (data set, neuron).

``get_config("<dataset>,<neuron>")``, e.g. ``--config configs/plif_nets.py:cifar10dvs,lif``;
dataset one of mnist, fmnist, nmnist, cifar10, cifar10dvs, gesture; neuron one of lif,
plif, klif, glif. The model is ``plif_net_<dataset>`` (SpikingJelly's
``parametric_lif_net.py``); PLIF starts at τ₀ = 2 and LIF has τ = 2, both with V_th 1,
V_reset 0, detached reset and the ATan surrogate (the zoo's defaults for these nets).

The recipe, from the authors' repository
(``fangwei123456/Parametric-Leaky-Integrate-and-Fire-Spiking-Neuron``):

- ``codes/train.py``: Adam over all parameters in one group (lr 1e-3 for the weights and
  the PLIF w alike, no weight decay), ``CosineAnnealingLR(T_max=64)`` stepped once per
  epoch (the argparse defaults ``-learning_rate 1e-3``, ``-T_max 64``, ``-batch_size
  16``), so ``cosine_period_epochs = 64``; test batch 16·8 (MNIST), 16·16 (Fashion-MNIST,
  CIFAR-10), 16·4 (N-MNIST), 16 (DVS sets); CIFAR10-DVS split 9:1 (``split_ratio=0.9``).
- ``README.md`` ("Running codes") and the ``Namespace`` lines of
  ``logs/B/terminal_out/*.txt``: ``-max_epoch 1024``, ``-init_tau 2.0 -detach_reset
  -use_max_pool``, T = 8 for the static sets, 20 frames for CIFAR10-DVS and DVS128
  Gesture; ``-split_by number -normalization None``.
- N-MNIST: T = 10 frames, as the README's command and the ``logs/A/NMNIST`` run names
  (``..._T_10_...``); its ``logs/B/terminal_out/nmnist.txt`` shows T = 20.
- ``codes/models.py`` ``get_transforms``: MNIST ``RandomAffine(30°, translate 0.15, scale
  0.85–1.11)``, Fashion-MNIST none, CIFAR-10 ``RandomCrop(32, padding=4)`` + flip; the
  event sets no augmentation. Frames at the sensor's size (128×128; N-MNIST 34×34).

Differences (not expressible in the config): the loss is cross-entropy of the mean over T
of the voting output (``loss="ce"``), where they take the MSE between that firing rate and
the one-hot label (``F.mse_loss(out_spikes_counter / T, one_hot)``); MNIST's random
affine augmentation is not applied; CIFAR-10 is normalised with the data pipeline's std
(0.247, 0.243, 0.261) where theirs is (0.2023, 0.1994, 0.2010). The networks are
SpikingJelly's (FCs with bias, CIFAR-10 with a second dropout, CIFAR10-DVS hidden FC 512);
the authors' 2020 ``codes/models.py`` has bias-free FCs and other hidden sizes.
"""

from ml_collections import config_dict

from configs import default

DATASETS = {
  "mnist": "mnist",
  "fmnist": "fashion_mnist",
  "nmnist": "n_mnist",
  "cifar10": "cifar10",
  "cifar10dvs": "cifar10_dvs",
  "gesture": "dvs128_gesture",
}
TIMESTEPS = {"mnist": 8, "fmnist": 8, "cifar10": 8, "nmnist": 10, "cifar10dvs": 20, "gesture": 20}
EVAL_BATCH = {"mnist": 128, "fmnist": 256, "cifar10": 256, "nmnist": 64}  # others: 16
FRAME_SIZE = {"nmnist": 34, "cifar10dvs": 128, "gesture": 128}  # event sets, sensor size
NEURONS = ("lif", "plif", "klif", "glif")


def plif_net_config(dataset: str, neuron: str) -> config_dict.ConfigDict:
  """``plif_net_<dataset>`` with ``neuron`` and the PLIF paper's recipe."""
  if dataset not in DATASETS:
    raise ValueError(f"dataset must be one of {tuple(DATASETS)}, got {dataset!r}")
  if neuron not in NEURONS:
    raise ValueError(f"neuron must be one of {NEURONS}, got {neuron!r}")
  config = default.get_config()
  config.dataset = DATASETS[dataset]
  config.model = f"plif_net_{dataset}"
  config.neuron = neuron
  config.timesteps = TIMESTEPS[dataset]
  if dataset in FRAME_SIZE:
    default.set_event_frames(config, TIMESTEPS[dataset], size=FRAME_SIZE[dataset])
  config.crop_padding = 4 if dataset == "cifar10" else 0
  config.flip = dataset == "cifar10"
  config.loss = "ce"
  default.set_optimizer(config, "adam", 1e-3, weight_decay=0.0, neuron_lr_scale=1.0)
  config.cosine_period_epochs = 64.0
  config.batch_size = 16
  config.eval_batch_size = EVAL_BATCH.get(dataset, 16)
  config.num_epochs = 1024
  return config


def get_config(arg: str = "mnist,plif") -> config_dict.ConfigDict:
  """The config of ``"<dataset>,<neuron>"``."""
  dataset, neuron = arg.split(",")
  return plif_net_config(dataset, neuron)
