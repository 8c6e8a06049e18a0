"""A synthetic image data set for tests and smoke runs: no files, learnable labels.

Each class has a fixed random prototype image; a record is its class's prototype plus
Gaussian noise, clipped to [0, 1]. A linear read-out separates the classes, so a few
training steps raise the accuracy well above chance.

`make_batches` feeds it through `glif_jax.data`'s batch indices (whose full pipeline
only takes the registered data sets): batch k of epoch e depends only on (seed, e, k);
eval batches are padded and carry a boolean ``mask``.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import numpy as np

from glif_jax.data import _pipeline

_PROTOTYPE_SEED = 1234  # the labelling rule is the same for every split
_NOISE = 0.3


class SyntheticSource:
  """A random-access source of ``{"image": float32 [H, W, C], "label": int32}`` records.

  Args:
    num_records: length of the source.
    image_shape: ``(H, W, C)``.
    num_classes: number of classes.
    seed: draws the labels and the noise (use different seeds for different splits).
  """

  def __init__(
    self, num_records: int, *, image_shape: tuple[int, int, int], num_classes: int, seed: int
  ):
    prototypes = np.random.default_rng(_PROTOTYPE_SEED).uniform(size=(num_classes, *image_shape))
    rng = np.random.default_rng(seed)
    self.labels = rng.integers(num_classes, size=num_records).astype(np.int32)
    noise = rng.normal(scale=_NOISE, size=(num_records, *image_shape))
    self.images = np.clip(prototypes[self.labels] + noise, 0.0, 1.0).astype(np.float32)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return {"image": self.images[index], "label": self.labels[index]}

  def batch(self, indices: np.ndarray, *, mask: bool) -> dict[str, np.ndarray]:
    """The records at ``indices [B]``; ``-1`` pads with zeros (false in ``"mask"``)."""
    valid = indices >= 0
    batch = {
      "image": np.where(valid[:, None, None, None], self.images[indices], 0.0),
      "label": np.where(valid, self.labels[indices], 0),
    }
    return {**batch, "mask": valid} if mask else batch


def load_synthetic(
  *, train_size: int, test_size: int, image_shape: tuple[int, int, int], num_classes: int
) -> dict[str, SyntheticSource]:
  """The ``{"train", "test"}`` splits of the synthetic data set."""
  make = lambda n, seed: SyntheticSource(  # noqa: E731
    n, image_shape=image_shape, num_classes=num_classes, seed=seed
  )
  return {"train": make(train_size, 0), "test": make(test_size, 1)}


def make_batches(
  source: SyntheticSource,
  *,
  batch_size: int,
  seed: int,
  epoch: int,
  train: bool,
  start_batch: int = 0,
  rows: slice | None = None,
  num_threads: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
  """Batches ``start_batch, ...`` of one epoch (train: shuffled, full; eval: padded, masked).

  Args as `glif_jax.data.make_batches`: the same order and the same ``rows`` of each batch.
  """
  rows = slice(0, batch_size) if rows is None else rows
  ds = _pipeline.index_batches(
    len(source), batch_size=batch_size, seed=seed, epoch=epoch, train=train, rows=rows
  )
  ds = ds.map(functools.partial(source.batch, mask=not train))
  return _pipeline.iterate(ds, start_batch=start_batch, num_threads=num_threads)
