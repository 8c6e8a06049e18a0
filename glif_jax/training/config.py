"""The default training config, and checks of a config run before anything is built."""

from __future__ import annotations

import difflib
from typing import Iterable

import ml_collections
from ml_collections import config_dict

from glif_jax import models
from glif_jax.training import optim

SYNTHETIC = "synthetic"
LOSSES = ("ce", "tet")
DTYPES = ("float32", "bfloat16")
NONFINITE_MODES = ("skip", "rollback", "abort")
# Sub-configs whose keys are free-form keyword arguments (not checked against the defaults).
FREE_FORM_KEYS = ("data_options", "neuron_options")


def default_config() -> ml_collections.ConfigDict:
  """Every config key, with its meaning and default; experiment configs override a few.

  Defaults are the GLIF paper's CIFAR recipe (Yao et al., NeurIPS 2022): ResNet-19, GLIF,
  T = 4, SGD momentum 0.9, lr 0.1 cosine to 0 over 200 epochs, batch 64, weight decay
  4e-5 on the weights only, neuron parameters at lr × 0.1, random crop + flip.
  """
  config = config_dict.ConfigDict()

  # Data.
  # One of glif_jax.data's names (mnist, fashion_mnist, cifar10, cifar100, cifar10_dvs,
  # dvs128_gesture, imagenet, ...) or "synthetic" (class prototypes + noise, no files).
  config.dataset = "cifar10"
  config.data_dir = config_dict.placeholder(str)  # prepared data (None: glif_jax.data's default)
  config.manual_dir = config_dict.placeholder(str)  # original files (None: per data set default)
  # Event data sets only: num_frames, split_by ("number" or "time"), size (frame side).
  config.data_options = config_dict.ConfigDict()
  config.synthetic = config_dict.ConfigDict()  # used only by dataset = "synthetic"
  config.synthetic.train_size = 512
  config.synthetic.test_size = 128
  config.synthetic.image_size = 8  # H = W
  config.synthetic.channels = 1
  config.synthetic.num_classes = 4

  # Model (glif_jax.models.create).
  config.model = "resnet19"  # resnet19, resnet18, resnet18ms, resnet34ms, sew_dvs, cnn_small, mlp
  config.neuron = "glif"  # glif, glif_f, klif, lif, plif
  config.neuron_options = config_dict.ConfigDict()  # extra neuron keyword arguments
  config.width = config_dict.placeholder(int)  # base width (None: the paper's)
  config.timesteps = 4  # T
  config.remat = False  # recompute each residual block in the backward pass (less memory)
  config.dtype = "float32"  # compute dtype: float32 or bfloat16

  # Loss.
  config.loss = "ce"  # "ce": CE of the mean over T of the logits; "tet": Deng et al. 2022
  config.label_smoothing = 0.0
  config.tet_mse_weight = 0.0  # λ of TET's MSE term (0: plain TET)
  config.tet_mse_target = 1.0  # φ, the MSE term's target for every logit

  # Optimiser.
  config.optimizer = "sgd"  # sgd or adam
  config.learning_rate = 0.1  # peak learning rate, for a batch of batch_size
  config.momentum = 0.9  # SGD only
  config.weight_decay = 4e-5  # L2 on weights; never on neuron parameters
  config.neuron_lr_scale = 0.1  # neuron parameters' lr / weights' lr
  config.warmup_epochs = 0.0  # linear warm-up before the cosine decay
  config.grad_clip_norm = config_dict.placeholder(float)  # global-norm clipping (None: off)

  # Run length and batching.
  config.num_epochs = 200
  config.num_train_steps = -1  # > 0: stop after this many steps (tests, smoke runs)
  config.batch_size = 64  # global, split over the local devices
  config.eval_batch_size = 256  # global

  # Logging, checkpoints, run control.
  config.seed = 0  # model initialisation and data order
  config.log_every_steps = 100
  config.checkpoint_every_steps = 0  # > 0: also checkpoint mid-epoch (always after each epoch)
  config.max_to_keep = 3  # latest checkpoints kept; the best by eval accuracy is kept too
  config.progress_bar = True
  config.overwrite = False  # True: discard a workdir's checkpoints made with another config
  config.distributed = False  # True: call jax.distributed.initialize() (multi-host)
  # A step whose loss, gradients or tdBN statistics are not finite is never applied (the
  # state stays as it was; the batch is consumed). Then: "skip" goes on, "rollback"
  # restores the latest checkpoint and replays from it (a step non-finite again on replay
  # is skipped), "abort" stops with an error. Non-finite steps are found at each log step
  # and before each checkpoint, so "abort" stops within log_every_steps steps. A state
  # made non-finite by an overflowing update is never saved: the run stops.
  config.nonfinite = "skip"
  config.max_nonfinite_steps = 10  # skip/rollback: abort once more steps than this were skipped
  return config


def _one_of(config: ml_collections.ConfigDict, key: str, valid: Iterable[str]) -> None:
  valid = tuple(valid)
  if config[key] not in valid:
    raise ValueError(f"config.{key} must be one of {valid}, got {config[key]!r}")


def _positive(config: ml_collections.ConfigDict, *keys: str) -> None:
  for key in keys:
    if config[key] is not None and config[key] <= 0:
      raise ValueError(f"config.{key} must be > 0, got {config[key]!r}")


def _key_problems(
  config: ml_collections.ConfigDict, default: ml_collections.ConfigDict, prefix: str
) -> list[str]:
  """Unknown and missing keys of ``config`` against ``default``, recursively."""
  problems = []
  for key in sorted(set(config.keys()) - set(default.keys())):
    close = difflib.get_close_matches(key, list(default.keys()), n=1)
    hint = f" (did you mean config.{prefix}{close[0]}?)" if close else ""
    problems.append(f"unknown key config.{prefix}{key}{hint}")
  for key in sorted(set(default.keys()) - set(config.keys())):
    problems.append(f"missing key config.{prefix}{key}")
  for key in sorted(set(config.keys()) & set(default.keys())):
    value, expected = config[key], default[key]
    if isinstance(expected, ml_collections.ConfigDict) and key not in FREE_FORM_KEYS:
      if isinstance(value, ml_collections.ConfigDict):
        problems += _key_problems(value, expected, f"{prefix}{key}.")
      else:
        problems.append(f"config.{prefix}{key} must be a ConfigDict, got {value!r}")
  return problems


def validate_keys(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming every unknown (e.g. misspelled) or missing key of ``config``.

  The valid keys are those of `default_config`; ``data_options`` and ``neuron_options``
  hold free-form keyword arguments and are not checked here.
  """
  problems = _key_problems(config, default_config(), "")
  if problems:
    raise ValueError("bad config keys: " + "; ".join(problems))


def validate_config(
  config: ml_collections.ConfigDict, *, dataset_names: Iterable[str], num_devices: int
) -> None:
  """Raises ValueError naming the key and the valid values for a bad config.

  Args:
    config: the training config (keys as in `default_config`).
    dataset_names: the valid values of ``config.dataset``.
    num_devices: the number of devices the global batches are split over.
  """
  validate_keys(config)
  _one_of(config, "dataset", dataset_names)
  _one_of(config, "model", models.MODEL_NAMES)
  _one_of(config, "neuron", models.NEURON_NAMES)
  _one_of(config, "optimizer", optim.OPTIMIZERS)
  _one_of(config, "loss", LOSSES)
  _one_of(config, "dtype", DTYPES)
  _one_of(config, "nonfinite", NONFINITE_MODES)
  _positive(
    config,
    "timesteps",
    "batch_size",
    "eval_batch_size",
    "num_epochs",
    "learning_rate",
    "width",
    "log_every_steps",
    "max_to_keep",
    "grad_clip_norm",
  )
  if config.max_nonfinite_steps < 0:
    raise ValueError(f"config.max_nonfinite_steps must be >= 0, got {config.max_nonfinite_steps}")
  for key in ("batch_size", "eval_batch_size"):
    if config[key] % num_devices:
      raise ValueError(
        f"config.{key} must be divisible by the number of devices ({num_devices}), "
        f"got {config[key]}"
      )
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ValueError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}")
  if not 0.0 <= config.tet_mse_weight <= 1.0:
    raise ValueError(f"config.tet_mse_weight must be in [0, 1], got {config.tet_mse_weight}")


def validate_input_shape(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> None:
  """Event data ``(T, H, W, C)`` must have ``config.timesteps`` frames per sample."""
  if len(input_shape) == 4 and input_shape[0] != config.timesteps:
    raise ValueError(
      f"config.timesteps must equal the event data's frames per sample "
      f"(config.data_options.num_frames): got timesteps={config.timesteps}, "
      f"frames={input_shape[0]}"
    )
