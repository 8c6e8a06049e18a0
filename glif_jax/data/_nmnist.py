"""N-MNIST: ATIS ``.bin`` recordings of the MNIST digits (Orchard et al., 2015), their
reader and the builder.

Each recording is one ``<Split>/<digit>/<name>.bin`` file (60k under ``Train/``, 10k under
``Test/``, shipped as the official ``Train.zip`` and ``Test.zip``), events of a 34x34 pixel
window of an ATIS camera. Recordings are a few KB; anything over
:data:`MAX_RECORDING_BYTES` is refused before it is read.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from glif_jax.data import _safe, _tfds
from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError
from glif_jax.data._events import Events
from glif_jax.data._mnist import DIGITS

SENSOR_SIZE = 34
EVENT_BYTES = 5
MAX_RECORDING_BYTES = 8 * 2**20
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}
HOMEPAGE = "https://www.garrickorchard.com/datasets/n-mnist"
HOW = (
  f"download Train.zip and Test.zip of N-MNIST from {HOMEPAGE} and put them (or their "
  "extracted Train/ and Test/ folders of <digit>/*.bin files) in this directory"
)


class Recording(NamedTuple):
  """One ``.bin`` file: its key ``<digit>/<name>.bin``, label, contents and where it is."""

  key: str
  label: int
  data: bytes
  where: str


def parse_atis_bin(data: bytes, *, name: str) -> Events:
  """Parses an ATIS ``.bin`` recording (N-MNIST).

  Each event is 5 bytes, one big-endian 40-bit word: bits 39-32 are the column ``x``,
  bits 31-24 the row ``y`` (both below 34), bit 23 the polarity and bits 22-0 the
  timestamp in microseconds, as SpikingJelly's ``load_ATIS_bin``.

  Args:
      data: the file contents.
      name: file name for error messages.

  Returns:
      The events, in file order.

  Raises:
      CorruptDatasetError: a partial event, or ``x`` or ``y`` outside the 34x34 window.
  """
  if len(data) % EVENT_BYTES:
    raise CorruptDatasetError(
      name, f"{len(data)} bytes, not a whole number of {EVENT_BYTES}-byte events"
    )
  raw = np.frombuffer(data, np.uint8).reshape(-1, EVENT_BYTES).astype(np.int64)
  x, y = raw[:, 0], raw[:, 1]
  for axis, coords in (("x", x), ("y", y)):
    if coords.size and coords.max() >= SENSOR_SIZE:
      raise CorruptDatasetError(name, f"event {axis} = {coords.max()} outside [0, {SENSOR_SIZE})")
  t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
  return Events(t=t, x=x, y=y, p=raw[:, 2] >> 7)


def _check_size(size: int, where: str) -> None:
  if size > MAX_RECORDING_BYTES:
    raise CorruptDatasetError(
      where, f"{size} bytes, more than an N-MNIST recording can be ({MAX_RECORDING_BYTES})"
    )


def _label(path: PurePosixPath) -> int | None:
  """The digit of a ``<digit>/<name>.bin`` path, None for any other path."""
  if path.suffix == ".bin" and len(path.parts) == 2 and path.parts[0] in DIGITS:
    return int(path.parts[0])
  return None


def folder_recordings(folder: Path) -> Iterator[Recording]:
  """The recordings of an extracted split folder (``Train/`` or ``Test/``), sorted by path."""
  for path in sorted(folder.glob("*/*.bin")):
    relative = PurePosixPath(path.relative_to(folder).as_posix())
    if (label := _label(relative)) is not None:
      _check_size(path.stat().st_size, str(path))
      yield Recording(str(relative), label, path.read_bytes(), str(path))


def zip_recordings(z: zipfile.ZipFile, *, archive: Path, folder: str) -> Iterator[Recording]:
  """The recordings ``<folder>/<digit>/*.bin`` of an open split zip, sorted by name.

  A member whose declared size is over :data:`MAX_RECORDING_BYTES` is refused before it
  is read, and no read returns more than that.
  """
  for info in sorted(z.infolist(), key=lambda i: i.filename):
    path = PurePosixPath(info.filename)
    if path.parts[:1] != (folder,) or info.is_dir():
      continue
    relative = PurePosixPath(*path.parts[1:])
    if (label := _label(relative)) is None:
      continue
    where = f"{archive}/{info.filename}"
    _check_size(info.file_size, where)
    try:
      with z.open(info) as f:
        data = f.read(MAX_RECORDING_BYTES + 1)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
      raise CorruptDatasetError(where, f"truncated or corrupt zip member ({err})") from err
    _check_size(len(data), where)
    yield Recording(str(relative), label, data, where)


def _recordings(source: Path, folder: str) -> Iterator[Recording]:
  """The recordings of one split, from its extracted folder or its zip."""
  if source.is_dir():
    yield from folder_recordings(source)
    return
  with _safe.open_zip(source) as z:
    yield from zip_recordings(z, archive=source, folder=folder)


class NMnistBuilder(_tfds.Builder, skip_registration=True):
  """N-MNIST (10 digits, 60k train / 10k test ATIS recordings, 34x34) as frames.

  Source: the official ``Train.zip`` and ``Test.zip`` or their extracted ``Train/`` and
  ``Test/`` folders of ``<digit>/*.bin`` files (:func:`parse_atis_bin`); the split is the
  official one and the label is the digit folder, as SpikingJelly's ``NMNIST``. The
  default config: 10 frames split by number at 34x34 (event counts).
  """

  name = "n_mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _tfds.FIRST_RELEASE
  HOMEPAGE = HOMEPAGE
  MANUAL_DOWNLOAD_INSTRUCTIONS = HOW
  SENSOR_SIZE = SENSOR_SIZE
  BUILDER_CONFIGS: ClassVar[list[_tfds.EventConfig]] = [
    _tfds.event_config(10, "number", SENSOR_SIZE, sensor_size=SENSOR_SIZE),
  ]
  CLASS_NAMES = DIGITS

  def _info(self) -> tfds.core.DatasetInfo:
    return _tfds.frames_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = {}
    for split, folder in SPLIT_FOLDERS.items():
      source = next((p for p in (manual / folder, manual / f"{folder}.zip") if p.exists()), None)
      if source is None:
        raise DatasetNotFoundError(
          f"{folder}/ or {folder}.zip", manual, self.MANUAL_DOWNLOAD_INSTRUCTIONS
        )
      splits[split] = self._generate_examples(source, folder)
    return splits

  def _generate_examples(self, source: Path, folder: str) -> Iterator[tuple[str, _tfds.Example]]:
    count = 0
    for count, recording in enumerate(_recordings(source, folder), 1):
      events = parse_atis_bin(recording.data, name=recording.where)
      yield recording.key, {"frames": _tfds.frames(self, events), "label": recording.label}
    if not count:
      raise DatasetNotFoundError(
        f"{folder}/<digit>/*.bin recordings", source, self.MANUAL_DOWNLOAD_INSTRUCTIONS
      )
