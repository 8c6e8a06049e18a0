"""A synthetic image data set for tests and smoke runs: no files, learnable labels.

Each class has a fixed random prototype image; a record is its class's prototype plus
Gaussian noise, clipped to [0, 1]. A linear read-out separates the classes, so a few
training steps raise the accuracy well above chance.

`make_batches` feeds it with the contract of `glif_jax.data.make_batches` (whose
pipeline only takes the registered data sets): batch k of epoch e depends only on
(seed, e, k); eval batches are padded and carry a boolean ``mask``.
"""

from __future__ import annotations

from typing import Any, Iterator

import grain
import numpy as np

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
) -> Iterator[dict[str, np.ndarray]]:
  """Batches ``start_batch, ...`` of one epoch (train: shuffled, full; eval: padded, masked)."""
  ds = grain.MapDataset.source(source)
  if train:
    ds = ds.shuffle(seed=int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
  ds = ds.map(lambda r: {**r, "mask": np.bool_(True)})
  ds = ds.batch(batch_size, drop_remainder=train).map(lambda b: _pad(b, batch_size))
  return (ds[k] for k in range(start_batch, len(ds)))


def _pad(batch: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  missing = batch_size - len(batch["label"])
  return {
    k: np.concatenate([v, np.zeros((missing, *v.shape[1:]), v.dtype)]) for k, v in batch.items()
  }
