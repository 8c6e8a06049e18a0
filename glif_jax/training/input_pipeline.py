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

from collections.abc import Iterator
from typing import Any

import ml_collections
import numpy as np

from glif_jax import data
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import read, read_optional


def dataset_names() -> tuple[str, ...]:
  """The valid values of ``config.dataset``."""
  return data.names()


def data_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``config.data_options``, and the data set's own section of the config if it has one."""
  own = config.get(read(config, "dataset", str))
  return {
    **read(config, "data_options", ml_collections.ConfigDict),
    **(own if isinstance(own, ml_collections.ConfigDict) else {}),
  }


def load(
  config: ml_collections.ConfigDict,
) -> tuple[dict[str, data.RecordSource], data.DatasetInfo]:
  """The ``{"train", "test"}`` splits of ``config.dataset`` and its `data.DatasetInfo`."""
  splits = data.load(
    read(config, "dataset", str),
    data_dir=read_optional(config, "data_dir", str),
    manual_dir=read_optional(config, "manual_dir", str),
    **data_options(config),
  )
  return splits, splits["train"].info


def batches(
  source: data.RecordSource,
  config: ml_collections.ConfigDict,
  *,
  train: bool,
  epoch: int = 0,
  start_batch: int = 0,
  rows: slice | None = None,
  num_threads: int = 0,
) -> Iterator[data.Batch]:
  """This process's ``rows`` (default: all) of the batches of one epoch, from ``start_batch``.

  Training batches (``config.batch_size``) are shuffled by (``config.seed``, ``epoch``),
  augmented as `augmentation` says and drop the remainder; eval batches
  (``config.eval_batch_size``) keep the order and pad the last batch, marking real
  examples in ``"mask"``. ``num_threads > 0`` grain threads read ahead (the same batches).
  """
  return data.make_batches(
    source,
    batch_size=read(config, "batch_size" if train else "eval_batch_size", int),
    seed=read(config, "seed", int),
    epoch=epoch,
    train=train,
    start_batch=start_batch,
    rows=rows,
    num_threads=num_threads,
    augmentation=augmentation(config) if train else None,
  )


def test_examples(
  source: data.RecordSource, config: ml_collections.ConfigDict, count: int
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


def augmentation(config: ml_collections.ConfigDict) -> data.Augmentation:
  """``config.crop_padding`` and ``config.flip``, the data set's default where None."""
  chosen = {
    "crop_padding": read_optional(config, "crop_padding", int),
    "flip": read_optional(config, "flip", bool),
  }
  default = data.info(read(config, "dataset", str), **data_options(config)).augmentation
  return default._replace(**{k: v for k, v in chosen.items() if v is not None})


def train_stream(
  source: data.RecordSource,
  config: ml_collections.ConfigDict,
  start: DataPosition,
  **options: Any,
) -> Iterator[data.Batch]:
  """Training batches from ``start`` on, epoch after epoch (``options``: see `batches`)."""
  epoch, first = start
  while True:
    yield from batches(source, config, train=True, epoch=epoch, start_batch=first, **options)
    epoch, first = epoch + 1, 0


def steps_per_epoch(source: data.RecordSource, config: ml_collections.ConfigDict) -> int:
  """Training steps in one epoch (the remainder is dropped)."""
  return data.num_batches(source, batch_size=read(config, "batch_size", int), train=True)


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """The run's training steps: ``config.num_train_steps`` if > 0, else whole epochs."""
  num_train_steps = read(config, "num_train_steps", int)
  return (
    num_train_steps if num_train_steps > 0 else read(config, "num_epochs", int) * steps_per_epoch
  )
