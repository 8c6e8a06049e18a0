"""The Spiking Heidelberg Digits (SHD, Cramer et al. 2020): the HDF5 reader and the builder.

The official ``shd_train.h5`` and ``shd_test.h5`` hold, for N spoken digits, the spikes of
700 cochlear channels: ``spikes/times`` (N variable-length float arrays, seconds) and
``spikes/units`` (N variable-length integer arrays, the channel of each spike), and
``labels`` (N integers, 20 classes: the digits 0-9 in English and in German). Each sample
becomes ``[T, 700]`` spike counts in T bins of equal duration over ``[0, duration)``
(spikes at or after ``duration`` are dropped, as in the SHD paper's set-up).

Files are refused, with a :class:`~glif_jax.data.CorruptDatasetError` naming the file and
the problem, when they are not HDF5, lack a dataset, have the wrong dtypes or shapes,
declare more samples than :data:`MAX_SAMPLES`, hold a sample of more than
:data:`MAX_EVENTS` spikes, a channel outside ``[0, 700)``, a negative or non-finite time,
times and units of different lengths, or a label outside ``[0, 20)``. Every size is
checked on the file's metadata before anything is read, and the samples are read one at a
time, so memory holds one sample.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from glif_jax._checks import check_positive_int
from glif_jax.data import _safe, _tfds
from glif_jax.data._errors import CorruptDatasetError

CHANNELS = 700
NUM_CLASSES = 20
MAX_SAMPLES = 100_000  # the official files hold about 8k and 2k
MAX_EVENTS = 2**20  # spikes per sample; the official samples hold a few thousand
SPLIT_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
HOMEPAGE = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
HOW = (
  f"download shd_train.h5.gz and shd_test.h5.gz from {HOMEPAGE}, gunzip them and put "
  "shd_train.h5 and shd_test.h5 in this directory"
)


@dataclasses.dataclass
class ShdConfig(tfds.core.BuilderConfig):
  """How SHD's spikes become frames.

  Attributes:
      num_frames: T, the time bins of a sample.
      duration: seconds binned; each bin lasts ``duration / T``.
  """

  num_frames: int = 100
  duration: float = 1.4


def shd_config(num_frames: int, duration: float) -> ShdConfig:
  """A :class:`ShdConfig` named ``t{T}_d{duration in ms}ms``, with validation."""
  check_positive_int("num_frames", num_frames)
  number = isinstance(duration, int | float) and not isinstance(duration, bool)
  if not (number and math.isfinite(duration) and duration > 0):
    raise ValueError(f"duration must be a finite number of seconds > 0, got {duration!r}")
  ms = round(duration * 1000)
  return ShdConfig(
    name=f"t{num_frames}_d{ms}ms",
    num_frames=num_frames,
    duration=float(duration),
    description=f"{num_frames} bins of {ms / num_frames:g} ms over the first {ms} ms",
  )


def spike_counts(
  times: np.ndarray, units: np.ndarray, *, num_frames: int, duration: float
) -> np.ndarray:
  """The spikes of one sample as uint16 counts ``[T, 700]`` (saturating at 65535).

  Spike i falls in bin ``floor(times[i] / duration · T)`` of channel ``units[i]``;
  spikes at or after ``duration`` are dropped. The arguments are checked by the reader.
  """
  kept = times < duration
  frame = np.floor(times[kept] * (num_frames / duration)).astype(np.int64)
  frame = np.minimum(frame, num_frames - 1)  # float rounding just below the duration
  flat = frame * CHANNELS + units[kept].astype(np.int64)
  counts = np.bincount(flat, minlength=num_frames * CHANNELS)
  return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16).reshape(num_frames, -1)


def _dataset(f: Any, key: str, path: Path) -> Any:
  import h5py

  found = f.get(key)
  if not isinstance(found, h5py.Dataset):
    raise CorruptDatasetError(
      path, f"no dataset {key!r} (an SHD file has spikes/times, spikes/units and labels)"
    )
  if found.ndim != 1:
    raise CorruptDatasetError(path, f"{key} must be one-dimensional, got shape {found.shape}")
  if found.shape[0] > MAX_SAMPLES:
    raise CorruptDatasetError(
      path, f"{key} declares {found.shape[0]} samples, more than an SHD file may ({MAX_SAMPLES})"
    )
  return found


def _check_kind(path: Path, key: str, dtype: Any, kind: str, what: str) -> None:
  import h5py

  base = h5py.check_vlen_dtype(dtype) if key != "labels" else dtype
  if base is None or np.dtype(base).kind not in kind:
    raise CorruptDatasetError(path, f"{key} must hold {what}, got dtype {dtype}")


class ShdFile:
  """An open SHD file, its datasets checked; `samples` reads them one at a time."""

  def __init__(self, f: Any, path: Path) -> None:
    self.path = path
    self.times = _dataset(f, "spikes/times", path)
    self.units = _dataset(f, "spikes/units", path)
    self.labels = _dataset(f, "labels", path)
    _check_kind(path, "spikes/times", self.times.dtype, "f", "variable-length float arrays")
    _check_kind(path, "spikes/units", self.units.dtype, "iu", "variable-length integer arrays")
    _check_kind(path, "labels", self.labels.dtype, "iu", "integers")
    lengths = {k: len(getattr(self, k)) for k in ("times", "units", "labels")}
    if len(set(lengths.values())) != 1:
      raise CorruptDatasetError(path, f"times, units and labels differ in length: {lengths}")

  def __len__(self) -> int:
    return len(self.labels)

  def sample(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(times, units, label)`` of sample ``i``, checked."""
    where = f"sample {i}"
    label = int(self.labels[i])
    if not 0 <= label < NUM_CLASSES:
      raise CorruptDatasetError(self.path, f"{where}: label {label} outside [0, {NUM_CLASSES})")
    times, units = np.asarray(self.times[i]), np.asarray(self.units[i])
    if times.shape != units.shape:
      raise CorruptDatasetError(
        self.path, f"{where}: {times.size} times but {units.size} units (one of each per spike)"
      )
    if times.size > MAX_EVENTS:
      raise CorruptDatasetError(self.path, f"{where}: {times.size} spikes, more than {MAX_EVENTS}")
    if times.size and not (np.all(np.isfinite(times)) and times.min() >= 0):
      raise CorruptDatasetError(self.path, f"{where}: a time is negative or not finite")
    if units.size and (units.min() < 0 or units.max() >= CHANNELS):
      raise CorruptDatasetError(
        self.path,
        f"{where}: channel {units.max() if units.max() >= CHANNELS else units.min()} "
        f"outside [0, {CHANNELS})",
      )
    return times.astype(np.float64), units, label


@contextlib.contextmanager
def open_shd(path: Path) -> Iterator[ShdFile]:
  """Opens an SHD file read-only; :class:`CorruptDatasetError` if it is not one."""
  import h5py

  try:
    f = h5py.File(path, "r")
  except OSError as err:
    raise CorruptDatasetError(path, f"not a readable HDF5 file ({err})") from err
  with f:
    try:
      yield ShdFile(f, path)
    except OSError as err:  # h5py's read errors
      raise CorruptDatasetError(path, f"unreadable SHD data ({type(err).__name__}: {err})") from err


class ShdBuilder(_tfds.Builder, skip_registration=True):
  """The Spiking Heidelberg Digits (20 classes, 700 channels) as spike counts ``[T, 700]``.

  Source: the official ``shd_train.h5`` and ``shd_test.h5`` (the official split). The
  default config: 100 bins of 14 ms over the first 1.4 s (:class:`ShdConfig`).
  """

  name = "shd"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _tfds.FIRST_RELEASE
  HOMEPAGE = HOMEPAGE
  MANUAL_DOWNLOAD_INSTRUCTIONS = HOW
  BUILDER_CONFIGS: ClassVar[list[ShdConfig]] = [shd_config(100, 1.4)]
  CLASS_NAMES = tuple(str(i) for i in range(NUM_CLASSES))

  @classmethod
  def config_from_options(cls, **options: Any) -> ShdConfig | str:
    """The config for ``num_frames`` and ``duration`` (defaults: the first config's), or
    its name if it is predefined."""
    allowed = {"num_frames", "duration"}
    if unknown := set(options) - allowed:
      raise ValueError(f"{cls.name} config options are {sorted(allowed)}, got {sorted(unknown)}")
    default = cls.BUILDER_CONFIGS[0]
    chosen = shd_config(
      options.get("num_frames", default.num_frames), options.get("duration", default.duration)
    )
    return chosen.name if chosen.name == default.name else chosen

  @classmethod
  def input_shape_of(cls, chosen: ShdConfig | str) -> tuple[int, int]:
    """``(T, 700)`` of a config or its name."""
    config = cls.builder_configs[chosen] if isinstance(chosen, str) else chosen
    if not isinstance(config, ShdConfig):
      raise TypeError(f"{cls.name}'s config {chosen!r} is not a ShdConfig")
    return (config.num_frames, CHANNELS)

  def _config(self) -> ShdConfig:
    config = self.builder_config
    if not isinstance(config, ShdConfig):
      raise TypeError(f"{self.name}'s config {config!r} is not a ShdConfig")
    return config

  def _info(self) -> tfds.core.DatasetInfo:
    shape = (self._config().num_frames, CHANNELS)
    return tfds.core.DatasetInfo(
      builder=self,
      description=(type(self).__doc__ or "").strip(),
      features=tfds.features.FeaturesDict(
        {
          "frames": tfds.features.Tensor(shape=shape, dtype=np.uint16, encoding="zlib"),
          "label": tfds.features.ClassLabel(names=self.CLASS_NAMES),
        }
      ),
      supervised_keys=("frames", "label"),
      homepage=self.HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    paths = {
      split: _safe.require_file(manual, name, how=self.MANUAL_DOWNLOAD_INSTRUCTIONS)
      for split, name in SPLIT_FILES.items()
    }
    return {split: self._generate_examples(path) for split, path in paths.items()}

  def _generate_examples(self, path: Path) -> Iterator[tuple[int, _tfds.Example]]:
    config = self._config()
    return examples(path, num_frames=config.num_frames, duration=config.duration)


def examples(
  path: str | Path, *, num_frames: int, duration: float
) -> Iterator[tuple[int, _tfds.Example]]:
  """``(index, {"frames": uint16 [T, 700], "label"})`` of each sample of an SHD file, read
  and checked one at a time (see the module docstring)."""
  with open_shd(Path(path)) as shd:
    for i in range(len(shd)):
      times, units, label = shd.sample(i)
      counts = spike_counts(times, units, num_frames=num_frames, duration=duration)
      yield i, {"frames": counts, "label": label}
