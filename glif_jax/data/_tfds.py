"""What the data sets' TFDS builders share: manual directories, feature specs, event configs.

As TFDS's own builders: one ``tfds.core.GeneratorBasedBuilder`` per data set, in its own
module, each overriding ``_info``, ``_split_generators`` and ``_generate_examples`` and
stating its facts (:class:`~glif_jax.data._info.DatasetFacts`); the code that reads
original files is plain functions (:mod:`._images`, :mod:`._events`, :mod:`._safe`).
Every builder reads a manual directory (``DownloadConfig(manual_dir=...)``), writes
``array_record`` shards and is read back with ``builder.as_data_source()``: random access,
no TensorFlow, no network. Our builders are not registered with TFDS
(``skip_registration``), so their names (``mnist``, ``cifar10``, ...) never clash with
TFDS's; ImageNet is TFDS's own ``imagenet2012`` builder.

TFDS writes into ``<name>/<config>/incomplete.XXXX_<version>`` and renames that directory
to ``<version>`` only after every split is written, so a failed build never looks
prepared.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from glif_jax._checks import check_choice, check_positive_int
from glif_jax.data import _events, _images
from glif_jax.data._errors import DatasetNotFoundError
from glif_jax.data._info import DatasetFacts

Example = dict[str, Any]
FIRST_RELEASE: dict[str, str] = {"1.0.0": "First release."}


class Builder(tfds.core.GeneratorBasedBuilder, DatasetFacts, skip_registration=True):
  """A TFDS builder that states its data set's facts: the base of every builder here."""


def manual_dir(dl_manager: tfds.download.DownloadManager, name: str, how: str) -> Path:
  """The manual directory, or :class:`DatasetNotFoundError` if it is missing or empty."""
  try:
    return Path(dl_manager.manual_dir)
  except AssertionError as err:  # TFDS asserts the directory exists and is not empty.
    where = getattr(dl_manager, "_manual_dir", "?")
    raise DatasetNotFoundError(f"manual directory for {name}", where, how) from err


# --- static images ---------------------------------------------------------------------------


def image_info(builder: Builder) -> tfds.core.DatasetInfo:
  """Images stored as uint8 ``IMAGE_SHAPE`` (raw bytes, zlib-compressed), ``CLASS_NAMES``."""
  return tfds.core.DatasetInfo(
    builder=builder,
    description=(type(builder).__doc__ or "").strip(),
    features=tfds.features.FeaturesDict(
      {
        "image": tfds.features.Tensor(shape=builder.IMAGE_SHAPE, dtype=np.uint8, encoding="zlib"),
        "label": tfds.features.ClassLabel(names=builder.CLASS_NAMES),
      }
    ),
    supervised_keys=("image", "label"),
    homepage=builder.HOMEPAGE,
  )


def image_examples(split: _images.ImageSplit) -> Iterator[tuple[int, Example]]:
  """``(key, {"image", "label"})`` of each image of a split, keyed by its index."""
  for i, (image, label) in enumerate(zip(split.images, split.labels)):
    yield i, {"image": image, "label": int(label)}


# --- event cameras ----------------------------------------------------------------------------


@dataclasses.dataclass
class EventConfig(tfds.core.BuilderConfig):
  """How event streams become frames.

  Attributes:
      num_frames: T, frames per sample.
      split_by: ``"number"`` (equal event counts per frame, SpikingJelly's
          ``split_by='number'``) or ``"time"`` (equal durations).
      size: frame height and width. The sensor's size (the builder's ``SENSOR_SIZE``:
          128, N-MNIST 34) keeps the event counts (uint16); any other size resizes the
          count frames bilinearly (:func:`glif_jax.data.resize_frames`, float32),
          as the GLIF authors' ``transforms.Resize([size, size])``.
  """

  num_frames: int = 16
  split_by: _events.SplitBy = "number"
  size: int = _events.SENSOR_SIZE


def event_config(
  num_frames: int, split_by: str, size: int, *, sensor_size: int = _events.SENSOR_SIZE
) -> EventConfig:
  """An :class:`EventConfig` named ``t{T}_{split_by}_s{size}``, with validation.

  ``sensor_size`` (the builder's ``SENSOR_SIZE``) only says, in the description, whether
  ``size`` keeps the counts or resizes them.
  """
  check_positive_int("num_frames", num_frames)
  check_choice("split_by", split_by, typing.get_args(_events.SplitBy))
  check_positive_int("size", size)
  how = "event counts" if size == sensor_size else "bilinear resize of the counts"
  return EventConfig(
    name=f"t{num_frames}_{split_by}_s{size}",
    num_frames=num_frames,
    split_by=typing.cast(_events.SplitBy, split_by),
    size=size,
    description=f"{num_frames} frames split by {split_by}, {size}x{size} pixels ({how})",
  )


def is_event_builder(cls: type[Builder]) -> bool:
  """Whether ``cls`` makes event frames (its configs are :class:`EventConfig`)."""
  return bool(cls.BUILDER_CONFIGS) and isinstance(cls.BUILDER_CONFIGS[0], EventConfig)


def builder_event_config(builder: Builder) -> EventConfig:
  """The :class:`EventConfig` of an event data set's builder."""
  config = builder.builder_config
  if not isinstance(config, EventConfig):
    raise TypeError(f"{builder.name} is not an event data set (its config is {config!r})")
  return config


def frames_info(builder: Builder) -> tfds.core.DatasetInfo:
  """Frames ``[T, S, S, 2]`` (uint16 counts at the sensor's size, else float32), labels."""
  c = builder_event_config(builder)
  dtype = np.uint16 if c.size == builder.SENSOR_SIZE else np.float32
  shape = (c.num_frames, c.size, c.size, 2)
  return tfds.core.DatasetInfo(
    builder=builder,
    description=(type(builder).__doc__ or "").strip(),
    features=tfds.features.FeaturesDict(
      {
        "frames": tfds.features.Tensor(shape=shape, dtype=dtype, encoding="zlib"),
        "label": tfds.features.ClassLabel(names=builder.CLASS_NAMES),
      }
    ),
    supervised_keys=("frames", "label"),
    homepage=builder.HOMEPAGE,
  )


def frames(builder: Builder, events: _events.Events) -> np.ndarray:
  """The frames of one sample under the builder's config (see :class:`EventConfig`)."""
  config, sensor_size = builder_event_config(builder), builder.SENSOR_SIZE
  counts = _events.events_to_frames(
    events, num_frames=config.num_frames, split_by=config.split_by, sensor_size=sensor_size
  )
  if config.size == sensor_size:
    return counts
  return _events.resize_frames(counts, config.size)
