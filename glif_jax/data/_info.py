"""What a data set says about itself, and its splits as random-access record sources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

TrainCrop = Callable[[np.ndarray, np.random.Generator], np.ndarray]
EvalCrop = Callable[[np.ndarray], np.ndarray]


class Augmentation(NamedTuple):
  """Training augmentation: a random crop of the input zero-padded by ``crop_padding``
  pixels on each side back to its size (0: none), then a random left-right ``flip``."""

  crop_padding: int = 0
  flip: bool = False


class DatasetInfo(NamedTuple):
  """What a model and the input pipeline need to know about a data set.

  Attributes:
      name: the data set's name, as given to :func:`load`.
      num_classes: number of labels.
      input_shape: shape of one example's input: ``(H, W, C)`` for images,
          ``(T, H, W, 2)`` for event frames (batches put the batch axis first).
      is_event: whether the input is event-camera frames (event counts per polarity).
      mean: per-channel mean of the training images in [0, 1] scale (``None``: the
          inputs are passed through unnormalised, as event counts and synthetic images).
      std: per-channel standard deviation, as ``mean``.
      augmentation: the training augmentation the GLIF authors use on this data set.
      train_crop: ``crop(image, rng)`` of one training record of any size to
          ``input_shape`` (ImageNet's); ``None``: every record has ``input_shape``.
      eval_crop: ``crop(image)`` of one evaluation record, as ``train_crop``.
  """

  name: str
  num_classes: int
  input_shape: tuple[int, ...]
  is_event: bool
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None
  augmentation: Augmentation = Augmentation()
  train_crop: TrainCrop | None = None
  eval_crop: EvalCrop | None = None


class DatasetFacts:
  """The facts of a data set, as class attributes; a data set's builder states those
  without a default and overrides those that differ from these defaults."""

  CLASS_NAMES: ClassVar[Sequence[str]]
  HOMEPAGE: ClassVar[str]  # the builders made here
  IMAGE_SHAPE: ClassVar[tuple[int, int, int]]  # image data sets: (H, W, C)
  SENSOR_SIZE: ClassVar[int]  # event data sets: the sensor's height and width

  MEAN: ClassVar[tuple[float, ...] | None] = None  # None: inputs not normalised
  STD: ClassVar[tuple[float, ...] | None] = None
  EVAL_SPLIT: ClassVar[str] = "test"  # the split `load` returns as "test"
  AUGMENTATION: ClassVar[Augmentation] = Augmentation()
  TRAIN_CROP: ClassVar[TrainCrop | None] = None
  EVAL_CROP: ClassVar[EvalCrop | None] = None
  MANUAL_DIR: ClassVar[str | None] = None  # the original files' default place (None: downloads)


def _as_numpy(record: dict[str, Any]) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in record.items()}


class Records(Protocol):
  """Random access to the records of a split."""

  def __len__(self) -> int: ...

  def __getitem__(self, index: int, /) -> dict[str, Any]: ...


class RecordSource(Sequence):
  """A split: random access to records ``{"image" or "frames": ..., "label": ...}``, and
  the data set's :class:`DatasetInfo` (``info``), which the batches follow.

  Every value is a NumPy array (``label`` an int64 scalar). ``records`` is any
  random-access sequence of records, e.g. TFDS's ``ArrayRecordDataSource``; suitable for
  ``grain.MapDataset.source``.
  """

  def __init__(self, records: Records, info: DatasetInfo) -> None:
    self._records = records
    self.info = info

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:  # type: ignore[override]
    if not -len(self) <= index < len(self):
      raise IndexError(f"record {index} out of range for {len(self)} records")
    return _as_numpy(self._records[index])

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Several records at once (one array_record call, not one per ``[i]``)."""
    getitems = getattr(self._records, "__getitems__", None)
    records = getitems(list(indices)) if getitems else [self._records[i] for i in indices]
    return [_as_numpy(r) for r in records]

  def __repr__(self) -> str:
    return f"RecordSource({self._records!r}, {self.info.name!r})"
