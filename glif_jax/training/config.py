"""The default training config, and checks of a config run before anything is built.

Code reads config values through `read` and `read_optional`, which check each value's type
(an int passes as a float) and give the type checker a typed value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, TypeVar

import ml_collections
from ml_collections import config_dict

import glif_jax
from glif_jax import models
from glif_jax.training import optim, parallel
from glif_jax.training.errors import ConfigError
from glif_jax.training.parallel import PARALLEL_MODES

LOSSES = ("ce", "tet")
DTYPES = ("float32", "bfloat16")
NONFINITE_MODES = ("skip", "rollback", "abort")
# Sub-configs whose keys are free-form keyword arguments (not checked against the defaults).
FREE_FORM_KEYS = ("data_options", "neuron_options")
# Keys that may differ between the processes of one run (paths on each host, its threads).
PER_PROCESS_KEYS = ("data_dir", "manual_dir", "input_threads", "progress_bar")
VERSION_KEY = "glif_jax.__version__"  # compared between processes with the config
MAX_SEED = 2**63 - 1  # the largest seed jax.random.key takes

_T = TypeVar("_T")


def default_config() -> ml_collections.ConfigDict:
  """Every config key, with its meaning and default; experiment configs override a few.

  Defaults are the GLIF paper's CIFAR recipe (Yao et al., NeurIPS 2022): ResNet-19, GLIF,
  T = 4, SGD momentum 0.9, lr 0.1 cosine to 0 over 200 epochs, batch 64, weight decay
  4e-5 on the weights only, neuron parameters at lr × 0.1 (the CIFAR configs: only the
  gates, as the authors), random crop + flip.
  """
  config = config_dict.ConfigDict()
  for section in (_data_keys, _model_keys, _optimisation_keys, _run_control_keys):
    section(config)
  # Locked: setting a key that does not exist (a misspelling) raises, naming the closest key.
  config.lock()
  for key in FREE_FORM_KEYS:
    read(config, key, ml_collections.ConfigDict).unlock()
  return config


def _data_keys(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The data set, where its files are, and its augmentation."""
  # Data.
  # One of glif_jax.data's names (mnist, fashion_mnist, cifar10, cifar100, cifar10_dvs,
  # dvs128_gesture, imagenet2012, ..., synthetic: class prototypes + noise, no files).
  config.dataset = "cifar10"
  config.data_dir = config_dict.placeholder(str)  # prepared data (None: glif_jax.data's default)
  config.manual_dir = config_dict.placeholder(str)  # original files (None: per data set default)
  # Event data sets only: num_frames, split_by ("number" or "time"), size (frame side).
  config.data_options = config_dict.ConfigDict()
  # The options of dataset = "synthetic" (a section named after the data set adds to
  # data_options).
  config.synthetic = config_dict.ConfigDict()
  config.synthetic.train_size = 512  # training examples
  config.synthetic.test_size = 128  # test examples
  config.synthetic.image_size = 8  # H = W
  config.synthetic.channels = 1  # C of every image
  config.synthetic.num_classes = 4  # classes, one prototype each
  # Training augmentation of the registered data sets: a random crop of the input
  # zero-padded by crop_padding pixels back to its size (0: none; event frames: one offset
  # for all T frames), and a random left-right flip. None: the data set's default, the
  # GLIF authors' (glif_jax.data.DatasetInfo.augmentation: CIFAR 4 + flip, CIFAR10-DVS 4 and
  # no flip, others none). ImageNet's random resized crop + flip is always applied.
  config.crop_padding = config_dict.placeholder(int)
  config.flip = config_dict.placeholder(bool)
  return config


def _model_keys(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The network and its neurons."""
  # Model (glif_jax.models.create).
  config.model = "resnet19"  # resnet19, resnet18, resnet18ms, resnet34ms, sew_dvs, cnn_small, mlp
  config.neuron = "glif"  # glif, glif_f, klif, lif, plif
  config.neuron_options = config_dict.ConfigDict()  # extra neuron keyword arguments
  # "tdbn" or "bn"; None: the model's own (tdBN for resnet19/resnet18 and the small models,
  # plain BN for the MS-ResNets and the SEW nets, as the GLIF authors ran them).
  config.norm = config_dict.placeholder(str)
  config.width = config_dict.placeholder(int)  # base width (None: the paper's)
  config.timesteps = 4  # T
  config.remat = False  # recompute each residual block in the backward pass (less memory)
  config.dtype = "float32"  # compute dtype: float32 or bfloat16
  return config


def _optimisation_keys(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Loss, optimiser, run length, batching and seed."""
  # Loss.
  config.loss = "ce"  # "ce": CE of the mean over T of the logits; "tet": Deng et al. 2022
  config.label_smoothing = 0.0  # of the cross-entropy's targets (0: none)
  config.tet_mse_weight = 0.0  # λ of TET's MSE term (0: plain TET)
  config.tet_mse_target = 1.0  # φ, the MSE term's target for every logit

  # Optimiser.
  config.optimizer = "sgd"  # sgd or adam
  config.learning_rate = 0.1  # peak learning rate, for a batch of batch_size
  config.momentum = 0.9  # SGD only
  config.weight_decay = 4e-5  # L2 on weights; never on neuron parameters
  config.neuron_lr_scale = 0.1  # neuron parameters' lr / weights' lr
  # GLIF's gate logits α, β, γ: lr / the other neuron parameters' lr (the authors'
  # --tunable-lif on CIFAR: 0.1 with neuron_lr_scale 1).
  config.gate_lr_scale = 1.0
  config.warmup_epochs = 0.0  # linear warm-up before the cosine decay
  # None: cosine decay to 0 over the run. A number: PyTorch's CosineAnnealingLR(T_max=it)
  # stepped once per epoch (rises again after T_max epochs; CIFAR10-DVS: 64).
  config.cosine_period_epochs = config_dict.placeholder(float)
  config.grad_clip_norm = config_dict.placeholder(float)  # global-norm clipping (None: off)

  # Run length and batching.
  config.num_epochs = 200  # passes over the training set
  config.num_train_steps = -1  # > 0: stop after this many steps (tests, smoke runs)
  config.batch_size = 64  # global, split over the local devices
  config.eval_batch_size = 256  # global
  config.seed = 0  # model initialisation and data order
  return config


def _run_control_keys(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """How a run is driven, not what it computes (`RUN_CONTROL_KEYS`)."""
  # Logging and checkpoints.
  config.log_every_steps = 100  # log the training metrics and GLIF's mean gates
  config.checkpoint_every_steps = 0  # > 0: also checkpoint mid-epoch (always after each epoch)
  config.max_to_keep = 3  # latest checkpoints kept; the best by eval accuracy is kept too
  config.progress_bar = True  # a tqdm progress bar on the console (process 0)
  config.overwrite = False  # True: discard a workdir's checkpoints made with another config
  # Parallelism. "jit": a Mesh over every device of every process, the global batch sharded
  # over it, the state replicated; "pmap": jax.pmap over each process's devices.
  config.parallel = "jit"
  # True: jax.distributed.initialize() first (several processes or hosts; see train.main).
  config.distributed = False
  # Seconds a process waits at start for all processes to join, and the silence after
  # which a process is taken for dead; then the others stop with one line (status 3).
  config.distributed_timeout = 60
  config.input_threads = 2  # grain threads reading and augmenting ahead (0: in the loop)
  # A step whose loss, gradients or tdBN statistics are not finite is never applied (the
  # state stays as it was; the batch is consumed). Then: "skip" goes on, "rollback"
  # restores the latest checkpoint and replays from it (a step non-finite again on replay
  # is skipped), "abort" stops with an error. Non-finite steps are found at each log step
  # and before each checkpoint, so "abort" stops within log_every_steps steps. A state
  # made non-finite by an overflowing update is never saved: the run stops.
  config.nonfinite = "skip"
  config.max_nonfinite_steps = 10  # skip/rollback: abort once more steps than this were skipped
  return config


RUN_CONTROL_KEYS = tuple(_run_control_keys(config_dict.ConfigDict()))
"""Keys that change how a run is driven, not what it computes: a workdir and a resumed
run accept any values of them."""


def read(config: ml_collections.ConfigDict, key: str, kind: type[_T]) -> _T:
  """``config[key]``, checked to be a ``kind`` (an int is taken as a float).

  Raises:
    ConfigError: the value is of another type.
  """
  found = config[key]
  if isinstance(found, kind):
    return found
  if kind is float and isinstance(found, int):
    return kind(found)
  raise ConfigError(f"config.{key} must be a {kind.__name__}, got {found!r}")


def read_optional(config: ml_collections.ConfigDict, key: str, kind: type[_T]) -> _T | None:
  """``config[key]`` if it is not None, checked as `read` does."""
  return None if config[key] is None else read(config, key, kind)


def what_it_computes(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``config`` as JSON values without its `RUN_CONTROL_KEYS`: two runs whose values are
  equal compute the same thing (a workdir refuses a config that differs)."""
  values = json.loads(config.to_json_best_effort())
  return {k: v for k, v in values.items() if k not in RUN_CONTROL_KEYS}


def _one_of(config: ml_collections.ConfigDict, key: str, valid: Iterable[str]) -> None:
  valid = tuple(valid)
  if config[key] not in valid:
    raise ConfigError(f"config.{key} must be one of {valid}, got {config[key]!r}")


def _positive(config: ml_collections.ConfigDict, *keys: str, prefix: str = "") -> None:
  for key in keys:
    number = read_optional(config, key, float)
    if number is not None and number <= 0:
      raise ConfigError(f"config.{prefix}{key} must be > 0, got {config[key]!r}")


def _flat_values(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``{dotted key: value}`` of every leaf of ``config`` (free-form sub-configs as one)."""
  values = json.loads(config.to_json_best_effort())

  def flatten(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
      if isinstance(value, dict) and key not in FREE_FORM_KEYS:
        flat |= flatten(value, f"{prefix}{key}.")
      else:
        flat[prefix + key] = value
    return flat

  return flatten(values, "")


def _finite(config: ml_collections.ConfigDict) -> None:
  """Every number of ``config`` is finite (NaN passes every comparison)."""
  for key, value in _flat_values(config).items():
    if isinstance(value, float) and not math.isfinite(value):
      raise ConfigError(f"config.{key} must be a finite number, got {value}")


def validate_keys(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the keys of ``config`` that `default_config` lacks or has.

  Configs made from `default_config` are locked, so a misspelt key fails where it is set,
  with ml_collections' suggestion; this catches configs built otherwise.
  ``data_options`` and ``neuron_options`` hold free-form keyword arguments.
  """
  default = default_config()
  flat, expected = set(_flat_values(config)), set(_flat_values(default))
  problems = [f"unknown key config.{k}" for k in sorted(flat - expected)]
  problems += [f"missing key config.{k}" for k in sorted(expected - flat)]
  if problems:
    raise ConfigError("bad config keys: " + "; ".join(problems))


def validate_config(
  config: ml_collections.ConfigDict, *, dataset_names: Iterable[str], num_devices: int
) -> None:
  """Raises ConfigError naming the key and the valid values for a bad config.

  Args:
    config: the training config (keys as in `default_config`).
    dataset_names: the valid values of ``config.dataset``.
    num_devices: the number of devices the global batches are split over.
  """
  validate_keys(config)
  _finite(config)
  _one_of(config, "dataset", dataset_names)
  _one_of(config, "model", models.MODEL_NAMES)
  _one_of(config, "neuron", models.NEURON_NAMES)
  if config.norm is not None:
    _one_of(config, "norm", models.NORM_NAMES)
  _one_of(config, "optimizer", optim.OPTIMIZERS)
  _one_of(config, "loss", LOSSES)
  _one_of(config, "dtype", DTYPES)
  _one_of(config, "nonfinite", NONFINITE_MODES)
  _one_of(config, "parallel", PARALLEL_MODES)
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
    "cosine_period_epochs",
  )
  synthetic = read(config, "synthetic", ml_collections.ConfigDict)
  _positive(synthetic, *synthetic.keys(), prefix="synthetic.")
  _positive(config, "distributed_timeout")
  for key in (
    "seed",
    "max_nonfinite_steps",
    "input_threads",
    "crop_padding",
    "neuron_lr_scale",
    "gate_lr_scale",
  ):
    number = read_optional(config, key, float)
    if number is not None and number < 0:
      raise ConfigError(f"config.{key} must be >= 0, got {config[key]}")
  if read(config, "seed", int) > MAX_SEED:
    raise ConfigError(f"config.seed must be at most {MAX_SEED} (JAX's keys), got {config.seed}")
  for key in ("batch_size", "eval_batch_size"):
    if read(config, key, int) % num_devices:
      raise ConfigError(
        f"config.{key} must be divisible by the number of devices ({num_devices}), "
        f"got {config[key]}"
      )
  label_smoothing = read(config, "label_smoothing", float)
  if not 0.0 <= label_smoothing < 1.0:
    raise ConfigError(f"config.label_smoothing must be in [0, 1), got {label_smoothing}")
  tet_mse_weight = read(config, "tet_mse_weight", float)
  if not 0.0 <= tet_mse_weight <= 1.0:
    raise ConfigError(f"config.tet_mse_weight must be in [0, 1], got {tet_mse_weight}")
  if config.cosine_period_epochs is not None and read(config, "warmup_epochs", float) > 0:
    raise ConfigError(
      "config.cosine_period_epochs and config.warmup_epochs cannot both be set, got "
      f"{config.cosine_period_epochs} and {config.warmup_epochs}"
    )


def agree_across_processes(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError in every process if the processes run different configs or
  glif-jax versions (a collective: every process calls it, before building anything).

  The message names each differing key and every process's value; `PER_PROCESS_KEYS`
  may differ.
  """
  values = {k: v for k, v in _flat_values(config).items() if k not in PER_PROCESS_KEYS}
  differing = parallel.differing_values({**values, VERSION_KEY: glif_jax.__version__})
  if differing:
    listed = "; ".join(
      f"{key}: " + ", ".join(f"process {i} {v!r}" for i, v in enumerate(vs))
      for key, vs in differing.items()
    )
    raise ConfigError(
      f"the processes of this run have different configs ({listed}); start every "
      "process with the same config and glif-jax version"
    )


def validate_input_shape(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> None:
  """Event data ``(T, H, W, C)`` must have ``config.timesteps`` frames per sample."""
  if len(input_shape) == 4 and input_shape[0] != config.timesteps:
    raise ConfigError(
      f"config.timesteps must equal the event data's frames per sample "
      f"(config.data_options.num_frames): got timesteps={config.timesteps}, "
      f"frames={input_shape[0]}"
    )
