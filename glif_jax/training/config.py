"""The default training config, and the one check of a config before anything is built.

`validate_config` checks every key, type and value once and returns a frozen `Config`, each
value of its declared type (an int given for a float key is taken as that float); the
code after it reads typed attributes (``config.batch_size``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Iterable, Mapping
from typing import Any

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
    typing.cast(ml_collections.ConfigDict, config[key]).unlock()
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


@dataclasses.dataclass(frozen=True)
class SyntheticOptions:
  """``config.synthetic``: the synthetic data set's sizes (see `default_config`)."""

  train_size: int
  test_size: int
  image_size: int
  channels: int
  num_classes: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
  """A training config after `validate_config`: every key of `default_config`, checked,
  each of its type (the meanings are `default_config`'s)."""

  # Data.
  dataset: str
  data_dir: str | None
  manual_dir: str | None
  data_options: Mapping[str, Any]
  synthetic: SyntheticOptions
  crop_padding: int | None
  flip: bool | None
  # Model.
  model: str
  neuron: str
  neuron_options: Mapping[str, Any]
  norm: str | None
  width: int | None
  timesteps: int
  remat: bool
  dtype: str
  # Loss, optimiser, run length, batching and seed.
  loss: str
  label_smoothing: float
  tet_mse_weight: float
  tet_mse_target: float
  optimizer: str
  learning_rate: float
  momentum: float
  weight_decay: float
  neuron_lr_scale: float
  gate_lr_scale: float
  warmup_epochs: float
  cosine_period_epochs: float | None
  grad_clip_norm: float | None
  num_epochs: int
  num_train_steps: int
  batch_size: int
  eval_batch_size: int
  seed: int
  # How the run is driven (`RUN_CONTROL_KEYS`).
  log_every_steps: int
  checkpoint_every_steps: int
  max_to_keep: int
  progress_bar: bool
  overwrite: bool
  parallel: str
  distributed: bool
  distributed_timeout: int
  input_threads: int
  nonfinite: str
  max_nonfinite_steps: int


RUN_CONTROL_KEYS = tuple(_run_control_keys(config_dict.ConfigDict()))
"""Keys that change how a run is driven, not what it computes: a workdir and a resumed
run accept any values of them."""


def _one_of(config: Config, key: str, valid: Iterable[str]) -> None:
  valid, value = tuple(valid), getattr(config, key)
  if value not in valid:
    raise ConfigError(f"config.{key} must be one of {valid}, got {value!r}")


def _numbers_at_least(
  config: Config | SyntheticOptions, keys: Iterable[str], low: int, *, prefix: str = ""
) -> None:
  """Each of ``keys`` is None or ``> 0`` (``low`` 1) or ``>= 0`` (``low`` 0)."""
  for key in keys:
    number = getattr(config, key)
    if number is not None and (number <= 0 if low else number < 0):
      raise ConfigError(f"config.{prefix}{key} must be {'> 0' if low else '>= 0'}, got {number!r}")


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


def _typed(config: ml_collections.ConfigDict, kind: type, prefix: str = "") -> Any:
  """``config`` as a ``kind`` (a dataclass), each value checked to be of its field's type:
  an int is taken as a float, None only where the type allows it.

  Raises:
    ConfigError: a value of another type.
  """
  values = {}
  for name, hint in typing.get_type_hints(kind).items():
    value: Any = config[name]
    allowed = typing.get_args(hint) or (hint,)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
      values[name] = _typed(value, hint, f"{prefix}{name}.")
    elif name in FREE_FORM_KEYS:
      values[name] = value.to_dict()
    elif float in allowed and isinstance(value, int) and not isinstance(value, bool):
      values[name] = float(value)
    elif (value is None and type(None) in allowed) or (
      isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool))
    ):
      values[name] = value
    else:
      expected = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
      raise ConfigError(f"config.{prefix}{name} must be a {expected}, got {value!r}")
  return kind(**values)


def recorded_config(values: dict[str, Any]) -> Config:
  """The `Config` of a run from the values its workdir records (`checkpoints.what_it_computes`): they
  override the defaults, which give the keys a run of an older version did not record.

  Raises:
    ConfigError: a recorded value of the wrong type.
    AttributeError: a key this version does not know.
  """
  config = default_config()
  config.update(values)
  return _typed(config, Config)


def validate_config(
  config: ml_collections.ConfigDict, *, dataset_names: Iterable[str], num_devices: int
) -> Config:
  """``config`` checked, as a typed and frozen `Config`.

  Args:
    config: the training config (keys as in `default_config`).
    dataset_names: the valid values of ``config.dataset``.
    num_devices: the number of devices the global batches are split over.

  Raises:
    ConfigError: a bad key, type or value; the message names the key and what is valid.
  """
  validate_keys(config)
  _finite(config)
  typed = _typed(config, Config)
  _check_names(typed, dataset_names)
  _check_numbers(typed, num_devices)
  return typed


def _check_names(config: Config, dataset_names: Iterable[str]) -> None:
  """Every key that names a choice names a valid one."""
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


def _check_numbers(config: Config, num_devices: int) -> None:
  """Every number is in its range, and the batches split over ``num_devices``."""
  _numbers_at_least(config, _POSITIVE_KEYS, 1)
  synthetic = [f.name for f in dataclasses.fields(SyntheticOptions)]
  _numbers_at_least(config.synthetic, synthetic, 1, prefix="synthetic.")
  _numbers_at_least(config, _NON_NEGATIVE_KEYS, 0)
  if config.seed > MAX_SEED:
    raise ConfigError(f"config.seed must be at most {MAX_SEED} (JAX's keys), got {config.seed}")
  for key, size in (("batch_size", config.batch_size), ("eval_batch_size", config.eval_batch_size)):
    if size % num_devices:
      raise ConfigError(
        f"config.{key} must be divisible by the number of devices ({num_devices}), got {size}"
      )
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ConfigError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}")
  if not 0.0 <= config.tet_mse_weight <= 1.0:
    raise ConfigError(f"config.tet_mse_weight must be in [0, 1], got {config.tet_mse_weight}")
  if config.cosine_period_epochs is not None and config.warmup_epochs > 0:
    raise ConfigError(
      "config.cosine_period_epochs and config.warmup_epochs cannot both be set, got "
      f"{config.cosine_period_epochs} and {config.warmup_epochs}"
    )


_POSITIVE_KEYS = (
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
  "distributed_timeout",
)
_NON_NEGATIVE_KEYS = (
  "seed",
  "max_nonfinite_steps",
  "input_threads",
  "crop_padding",
  "neuron_lr_scale",
  "gate_lr_scale",
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
