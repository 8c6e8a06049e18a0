"""Checks of a training config, run before anything is built or compiled."""

from __future__ import annotations

from typing import Iterable

import ml_collections

from glif_jax import models
from glif_jax.training import optim

SYNTHETIC = "synthetic"
LOSSES = ("ce", "tet")
DTYPES = ("float32", "bfloat16")


def _one_of(config: ml_collections.ConfigDict, key: str, valid: Iterable[str]) -> None:
  valid = tuple(valid)
  if config[key] not in valid:
    raise ValueError(f"config.{key} must be one of {valid}, got {config[key]!r}")


def _positive(config: ml_collections.ConfigDict, *keys: str) -> None:
  for key in keys:
    if config[key] is not None and config[key] <= 0:
      raise ValueError(f"config.{key} must be > 0, got {config[key]!r}")


def validate_config(
  config: ml_collections.ConfigDict, *, dataset_names: Iterable[str], num_devices: int
) -> None:
  """Raises ValueError naming the key and the valid values for a bad config.

  Args:
    config: the training config (keys as in ``configs/default.py``).
    dataset_names: the valid values of ``config.dataset``.
    num_devices: the number of devices the global batches are split over.
  """
  _one_of(config, "dataset", dataset_names)
  _one_of(config, "model", models.MODEL_NAMES)
  _one_of(config, "neuron", models.NEURON_NAMES)
  _one_of(config, "optimizer", optim.OPTIMIZERS)
  _one_of(config, "loss", LOSSES)
  _one_of(config, "dtype", DTYPES)
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
