"""DVS128 Gesture: the builder, from the official tarball, cut into samples as SpikingJelly."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import tensorflow_datasets as tfds

from glif_jax.data import _events, _safe, _tfds
from glif_jax.data._errors import CorruptDatasetError


class Dvs128GestureBuilder(_tfds.Builder, skip_registration=True):
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
    **_tfds.FIRST_RELEASE,
    "2.0.0": "Frames below 128x128 are a bilinear resize of the sensor's count frames.",
  }
  HOMEPAGE = "https://research.ibm.com/interactive/dvsgesture/"
  ARCHIVE = "DvsGesture.tar.gz"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"download {ARCHIVE} from {HOMEPAGE} and put it (or its extracted DvsGesture/ "
    "folder) in this directory"
  )
  BUILDER_CONFIGS: ClassVar[list[_tfds.EventConfig]] = [
    _tfds.event_config(16, "number", 128),  # SpikingJelly's SEW ResNet recipe
    _tfds.event_config(20, "number", 128),
    _tfds.event_config(16, "number", 64),
  ]
  SENSOR_SIZE = _events.SENSOR_SIZE
  CLASS_NAMES = (
        "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
        "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
        "arm_roll", "air_drums", "air_guitar", "other_gestures",
    )  # fmt: skip

  def _info(self) -> tfds.core.DatasetInfo:
    return _tfds.frames_info(self)

  def _root(self, dl_manager: tfds.download.DownloadManager) -> Path:
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
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
  ) -> Iterator[tuple[str, _tfds.Example]]:
    for aedat, labels in recordings:
      events = _events.parse_aedat31_polarity(aedat.read_bytes(), name=aedat.name)
      for i, (class_id, start, end) in enumerate(_gesture_labels(labels)):
        sample = events.select((events.t >= start) & (events.t < end))
        frames = _tfds.frames(self, sample)
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
  return [(label, start, end) for label, start, end in parsed]
