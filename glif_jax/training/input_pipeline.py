"""Data for training: the data set's splits and info, and this process's share of each batch.

The data set is ``config.dataset`` with its options: ``config.data_options`` and, where the
config has a section named after the data set (``config.synthetic``), that section.

Batches come from `glif_jax.data`'s deterministic, step-indexed pipeline, so the batch
after a given (epoch, batch index) is the same in a resumed run as in an uninterrupted
one, whatever the number of processes. Each process reads only ``rows`` of every global
batch (its devices' block, `parallel.Layout.rows`), with grain threads reading ahead
(``config.input_threads`` in the training loop).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from glif_jax import data
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import Config, ConfigError

_SYNTHETIC_BYTES = 16  # per value of the synthetic data set while it is drawn (float64 + copy)


def dataset_names() -> tuple[str, ...]:
  """The valid values of ``config.dataset``."""
  return data.names()


def data_options(config: Config) -> dict[str, Any]:
  """``config.data_options``, and the data set's own section of the config if it has one."""
  own = getattr(config, config.dataset, None)
  return {**config.data_options, **(dataclasses.asdict(own) if own is not None else {})}


def _memory_bytes() -> int:
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_synthetic_size(config: Config) -> None:
  """Raises ConfigError if the synthetic data set would not fit in this machine's memory."""
  if config.dataset != "synthetic":
    return
  options = data_options(config)
  shape = data.info("synthetic", **options).input_shape
  records = options.get("train_size", 512) + options.get("test_size", 128)
  needed = _SYNTHETIC_BYTES * (records + options.get("num_classes", 4)) * int(np.prod(shape))
  if needed > _memory_bytes():
    raise ConfigError(
      f"the synthetic data set of {records} images of shape {shape} would take "
      f"{needed / 2**30:.1f} GiB, more than this machine's {_memory_bytes() / 2**30:.1f} GiB; "
      "lower config.synthetic.image_size, train_size or test_size"
    )


def load(
  config: Config,
) -> tuple[dict[str, data.RecordSource], data.DatasetInfo]:
  """The ``{"train", "test"}`` splits of ``config.dataset`` and its `data.DatasetInfo`.

  Raises:
    ConfigError: the synthetic data set would not fit in memory (checked before it is made).
    CorruptDatasetError: the data files, or the prepared copy of them, cannot be read (the
      first and last record of each split are read here).
  """
  _check_synthetic_size(config)
  name, data_dir = config.dataset, config.data_dir
  try:
    splits = data.load(
      name,
      data_dir=data_dir,
      manual_dir=config.manual_dir,
      **data_options(config),
    )
    for split in splits.values():  # the first and last records: a prepared file that is cut
      split.__getitems__(sorted({0, len(split) - 1}) if len(split) else [])
  except (ValueError, OSError, data.ForbiddenGlobalError):  # named by the readers
    raise
  except Exception as err:  # TFDS's and array_record's own: a broken prepared copy
    where = data_dir or "the default data_dir"
    first = " ".join(str(err).split())[:200]
    raise data.CorruptDatasetError(
      where,
      f"the prepared {name} cannot be read ({type(err).__name__}: {first}); delete its "
      f"{name}/ directory there to rebuild it from the original files",
    ) from err
  return splits, splits["train"].info


def batches(
  source: data.RecordSource,
  config: Config,
  *,
  train: bool,
  epoch: int = 0,
  start_batch: int = 0,
  rows: slice | None = None,
  num_threads: int = 0,
) -> Iterator[data.Batch]:
  """This process's ``rows`` (default: all) of the batches of one epoch, from ``start_batch``.

  Training batches (``config.batch_size``) are shuffled by (``config.seed``, ``epoch``),
  augmented as `augmentation` says and drop the remainder; eval batches (`eval_batch_size`)
  keep the order and pad the last batch, marking real examples in ``"mask"``. ``num_threads > 0`` grain threads read ahead (the same batches).
  """
  return data.make_batches(
    source,
    batch_size=config.batch_size if train else eval_batch_size(source, config),
    seed=config.seed,
    epoch=epoch,
    train=train,
    start_batch=start_batch,
    rows=rows,
    num_threads=num_threads,
    augmentation=augmentation(config) if train else None,
  )


def eval_batch_size(source: data.RecordSource, config: Config) -> int:
  """``config.eval_batch_size``, or less for a split that it would pad beyond its own size:
  the split's size rounded up to a multiple of the device count."""
  devices = jax.device_count()
  return min(config.eval_batch_size, -(-len(source) // devices) * devices)


def check_sizes(splits: dict[str, data.RecordSource], config: Config) -> None:
  """Raises ConfigError for sizes the data cannot serve, before anything is allocated for them:
  event frames per sample other than ``config.timesteps``, a training batch larger than the
  training split, an empty test split, or a crop padding larger than the input's side."""
  validate_input_shape(config, splits["train"].info.input_shape)
  train, batch_size = len(splits["train"]), config.batch_size
  if batch_size > train:
    raise ConfigError(
      f"config.batch_size ({batch_size}) is larger than the training split of "
      f"{config.dataset} ({train} examples); set --config.batch_size to at most {train}"
    )
  if not len(splits["test"]):
    raise ConfigError(f"the test split of {config.dataset} is empty; nothing to evaluate")
  side = min(splits["train"].info.input_shape[-3:-1])
  padding = augmentation(config).crop_padding
  if padding > side:
    raise ConfigError(
      f"config.crop_padding ({padding}) is larger than the input's side ({side} pixels); "
      f"set --config.crop_padding to at most {side}"
    )


def test_examples(
  source: data.RecordSource, config: Config, count: int
) -> tuple[np.ndarray, np.ndarray]:
  """The first ``count`` real examples of the test split (at most one eval batch).

  Returns:
    ``(inputs, labels)``: inputs as the model takes them (event frames time-major,
    ``[T, B, ...]``; images ``[B, H, W, C]``) and labels ``[B]``.
  """
  batch = next(batches(source, config, train=False))
  real = batch["mask"]
  images, labels = batch["image"][real][:count], batch["label"][real][:count]
  return (np.swapaxes(images, 0, 1) if images.ndim == 5 else images), labels


def augmentation(config: Config) -> data.Augmentation:
  """``config.crop_padding`` and ``config.flip``, the data set's default where None."""
  chosen = {
    "crop_padding": config.crop_padding,
    "flip": config.flip,
  }
  default = data.info(config.dataset, **data_options(config)).augmentation
  return default._replace(**{k: v for k, v in chosen.items() if v is not None})


def train_stream(
  source: data.RecordSource,
  config: Config,
  start: DataPosition,
  **options: Any,
) -> Iterator[data.Batch]:
  """Training batches from ``start`` on, epoch after epoch (``options``: see `batches`)."""
  epoch, first = start
  while True:
    yield from batches(source, config, train=True, epoch=epoch, start_batch=first, **options)
    epoch, first = epoch + 1, 0


def steps_per_epoch(source: data.RecordSource, config: Config) -> int:
  """Training steps in one epoch (the remainder is dropped)."""
  return data.num_batches(source, batch_size=config.batch_size, train=True)


def total_steps(config: Config, steps_per_epoch: int) -> int:
  """The run's training steps: ``config.num_train_steps`` if > 0, else whole epochs."""
  num_train_steps = config.num_train_steps
  return num_train_steps if num_train_steps > 0 else config.num_epochs * steps_per_epoch


def validate_input_shape(config: Config, input_shape: tuple[int, ...]) -> None:
  """Event data ``(T, H, W, C)`` must have ``config.timesteps`` frames per sample."""
  if len(input_shape) == 4 and input_shape[0] != config.timesteps:
    raise ConfigError(
      f"config.timesteps must equal the event data's frames per sample "
      f"(config.data_options.num_frames): got timesteps={config.timesteps}, "
      f"frames={input_shape[0]}"
    )
