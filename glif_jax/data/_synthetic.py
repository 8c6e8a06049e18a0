"""A synthetic image data set for tests and smoke runs: no files, learnable labels.

Each class has a fixed random prototype image; a record is its class's prototype plus
Gaussian noise, clipped to [0, 1]. A linear read-out separates the classes, so a few
training steps raise the accuracy well above chance. The splits are made in memory (no
TFDS, nothing on disk) and batched as every data set: the float images are passed
through unnormalised, with no augmentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glif_jax.data._info import DatasetInfo, RecordSource

NAME = "synthetic"
_PROTOTYPE_SEED = 1234  # the labelling rule is the same for every split
_NOISE = 0.3
_SPLIT_SEEDS = {"train": 0, "test": 1}


class SyntheticRecords:
  """Random-access ``{"image": float32 [H, W, C], "label": int32}`` records.

  Args:
    num_records: length of the split.
    image_shape: ``(H, W, C)``.
    num_classes: number of classes.
    seed: draws the labels and the noise (different seeds for different splits).
  """

  def __init__(
    self, num_records: int, *, image_shape: tuple[int, ...], num_classes: int, seed: int
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


def info(
  *,
  image_size: int = 8,
  channels: int = 1,
  num_classes: int = 4,
  train_size: int = 512,
  test_size: int = 128,
) -> DatasetInfo:
  """The synthetic data set's :class:`DatasetInfo` (the sizes only matter to `load`)."""
  del train_size, test_size
  shape = (image_size, image_size, channels)
  return DatasetInfo(NAME, num_classes, shape, is_event=False, mean=None, std=None)


def load(*, train_size: int = 512, test_size: int = 128, **config: Any) -> dict[str, RecordSource]:
  """The ``{"train", "test"}`` splits of ``train_size`` and ``test_size`` records
  (``config``: ``image_size``, ``channels``, ``num_classes``, as `info`)."""
  described = info(**config)
  sizes = {"train": train_size, "test": test_size}
  return {
    split: RecordSource(
      SyntheticRecords(
        sizes[split],
        image_shape=described.input_shape,
        num_classes=described.num_classes,
        seed=_SPLIT_SEEDS[split],
      ),
      described,
    )
    for split in sizes
  }
