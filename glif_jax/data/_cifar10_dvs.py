"""CIFAR10-DVS: the builder, from the official ``.aedat`` files, with the GLIF authors'
split, frames and training crop."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from glif_jax.data import _events, _safe, _tfds
from glif_jax.data._cifar import CIFAR10_CLASSES
from glif_jax.data._errors import DatasetNotFoundError
from glif_jax.data._info import Augmentation


@dataclasses.dataclass(frozen=True)
class _AedatFile:
  """One CIFAR10-DVS recording: in a class folder (``member`` None) or a class zip."""

  key: str
  path: Path
  member: str | None = None

  def read(self) -> bytes:
    if self.member is None:
      return self.path.read_bytes()
    with _safe.open_zip(self.path) as z:
      return _safe.read_zip_member(
        z, self.member, limit=_events.CIFAR10_DVS_MAX_BYTES, source=self.path
      )


class Cifar10DvsBuilder(_tfds.Builder, skip_registration=True):
  """CIFAR10-DVS (10k event recordings, 1000 per class, 128x128) as frames.

  Source: the official per-class ``.aedat`` files, either in folders ``airplane/`` ...
  ``truck/`` or in the official ``airplane.zip`` ... ``truck.zip``. There is no official
  split: as the GLIF authors' ``split_to_train_test_set(0.9, ..., random_split=False)`` on
  SpikingJelly's ``CIFAR10DVS`` folder, each class's files sorted by name
  (lexicographically, as torchvision's ``DatasetFolder``) give the first ``ceil(0.9·n)`` to
  train and the rest to test (900/100 per class).

  The default config is the authors': 16 frames split by number at 128x128, resized to
  48x48 (:class:`~glif_jax.data.EventConfig`).
  """

  name = "cifar10_dvs"
  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {
    **_tfds.FIRST_RELEASE,
    "2.0.0": "Frames below 128x128 are a bilinear resize of the sensor's count frames "
    "(the GLIF authors' Resize), not coordinate binning.",
  }
  HOMEPAGE = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "download the ten class archives airplane.zip ... truck.zip of CIFAR10-DVS from "
    f"{HOMEPAGE} and put them (or their extracted class folders airplane/ ... truck/ "
    "holding the .aedat files) in this directory"
  )
  BUILDER_CONFIGS: ClassVar[list[_tfds.EventConfig]] = [
    _tfds.event_config(16, "number", 48),  # the GLIF paper's setting
    _tfds.event_config(10, "number", 128),
    _tfds.event_config(16, "number", 128),
  ]
  SENSOR_SIZE = _events.SENSOR_SIZE
  CLASS_NAMES = CIFAR10_CLASSES
  TRAIN_FRACTION = 0.9
  # The authors' (cifar10dvs/train.py --dsr_da) RandomCrop(48, padding=4) of the frame
  # tensor, no flip.
  AUGMENTATION = Augmentation(4, False)

  def _info(self) -> tfds.core.DatasetInfo:
    return _tfds.frames_info(self)

  def _class_files(self, manual_dir: Path, class_name: str) -> list[_AedatFile]:
    folder, archive = manual_dir / class_name, manual_dir / f"{class_name}.zip"
    if folder.is_dir():
      paths = sorted(p for p in folder.iterdir() if p.suffix == ".aedat")
      files = [_AedatFile(f"{class_name}/{p.name}", p) for p in paths]
    elif archive.is_file():
      with _safe.open_zip(archive) as z:
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
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits: dict[str, list[tuple[_AedatFile, int]]] = {"train": [], "test": []}
    for label, class_name in enumerate(self.CLASS_NAMES):
      files = self._class_files(manual, class_name)
      n_train = int(np.ceil(len(files) * self.TRAIN_FRACTION))
      splits["train"] += [(f, label) for f in files[:n_train]]
      splits["test"] += [(f, label) for f in files[n_train:]]
    return {name: self._generate_examples(files) for name, files in splits.items()}

  def _generate_examples(
    self, files: list[tuple[_AedatFile, int]]
  ) -> Iterator[tuple[str, _tfds.Example]]:
    for file, label in files:
      events = _events.parse_cifar10_dvs(file.read(), name=file.key)
      yield file.key, {"frames": _tfds.frames(self, events), "label": label}
