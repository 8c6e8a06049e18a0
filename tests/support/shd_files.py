"""SHD files in the official HDF5 layout, for the tests of `glif_jax.data._shd`."""

from pathlib import Path

import h5py
import numpy as np

from glif_jax.data import _shd


def write_shd(
  path: Path,
  samples,
  labels,
  *,
  times_dtype=np.float32,
  units_dtype=np.uint16,
  labels_dtype=np.uint8,
) -> Path:
  """``spikes/times``, ``spikes/units`` (one variable-length array per sample) and
  ``labels``; ``samples`` is a list of ``(times, units)``."""
  with h5py.File(path, "w") as f:
    for key, dtype, index in (("times", times_dtype, 0), ("units", units_dtype, 1)):
      ds = f.create_dataset(f"spikes/{key}", (len(samples),), dtype=h5py.vlen_dtype(dtype))
      for i, sample in enumerate(samples):
        ds[i] = np.asarray(sample[index], dtype)
    f.create_dataset("labels", data=np.asarray(labels, labels_dtype))
  return path


def read_all(path: str) -> int:
  """Reads and bins every sample of an SHD file (as the builder does); their number."""
  return sum(1 for _ in _shd.examples(path, num_frames=100, duration=1.4))
