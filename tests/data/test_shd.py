"""The Spiking Heidelberg Digits builder: exact bin counts and labels from files written in
the official layout; malformed and hostile files refused, naming the problem."""

import h5py
import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import CorruptDatasetError, DatasetNotFoundError, _shd
from tests.support import bombs
from tests.support.shd_files import write_shd

# Sample 0, 4 bins of 0.25 s over 1 s: (time, channel) -> bin.
SAMPLE = (
  [0.0, 0.125, 0.25, 0.375, 0.375, 0.75, 0.96875, 1.0, 1.25],
  [0, 699, 5, 5, 5, 3, 3, 1, 2],
)


def _expected_counts():
  counts = np.zeros((4, 700), np.uint16)
  counts[0, 0] = counts[0, 699] = 1  # 0.0, 0.125
  counts[1, 5] = 3  # 0.25, 0.375, 0.375
  counts[3, 3] = 2  # 0.75, 0.96875; 1.0 and 1.25 are at or after the duration: dropped
  return counts


def _write_official(directory):
  samples = [SAMPLE, ([], []), ([0.5], [42])]
  write_shd(directory / "shd_train.h5", samples, [7, 19, 0], times_dtype=np.float16)
  write_shd(directory / "shd_test.h5", samples[:1], [3])


def test_the_builder_bins_spikes_by_time_exactly(tmp_path, data_dir):
  _write_official(tmp_path)
  splits = data.load("shd", data_dir=data_dir, manual_dir=tmp_path, num_frames=4, duration=1.0)
  train, test = splits["train"], splits["test"]
  assert train.info.input_shape == (4, 700) and train.info.num_classes == 20
  assert [int(train[i]["label"]) for i in range(3)] == [7, 19, 0]
  np.testing.assert_array_equal(train[0]["frames"], _expected_counts())
  np.testing.assert_array_equal(train[1]["frames"], np.zeros((4, 700)))
  third = np.zeros((4, 700))
  third[2, 42] = 1
  np.testing.assert_array_equal(train[2]["frames"], third)
  assert len(test) == 1 and int(test[0]["label"]) == 3
  batch = next(data.make_batches(train, batch_size=2, seed=0, epoch=0, train=False))
  assert batch["image"].shape == (2, 4, 700) and batch["image"].dtype == np.float32


def test_options_are_checked_and_named():
  assert data.info("shd").input_shape == (100, 700)
  with pytest.raises(ValueError, match=r"config options are \['duration', 'num_frames'\]"):
    data.info("shd", size=48)
  with pytest.raises(ValueError, match="duration must be a finite number of seconds > 0"):
    data.info("shd", duration=float("nan"))


def test_missing_files_say_where_and_how(tmp_path, data_dir):
  write_shd(tmp_path / "shd_train.h5", [SAMPLE], [1])
  with pytest.raises(DatasetNotFoundError, match="'shd_test.h5' not found.*gunzip"):
    data.load("shd", data_dir=data_dir, manual_dir=tmp_path)


def _refused(path, message):
  with pytest.raises(CorruptDatasetError, match=message):
    list(_shd.examples(path, num_frames=4, duration=1.0))


@pytest.mark.parametrize(
  "samples,labels,options,message",
  [
    ([([0.1], [700])], [0], {}, r"sample 0: channel 700 outside \[0, 700\)"),
    ([([0.1, -0.5], [1, 2])], [0], {}, "sample 0: a time is negative or not finite"),
    ([([float("nan")], [1])], [0], {}, "sample 0: a time is negative or not finite"),
    ([([0.1, 0.2], [1])], [0], {}, "sample 0: 2 times but 1 units"),
    ([([0.1], [1])], [20], {}, r"sample 0: label 20 outside \[0, 20\)"),
    ([([0.1], [1])], [0, 1], {}, "times, units and labels differ in length"),
    ([([1], [1])], [0], {"times_dtype": np.int32}, "spikes/times must hold variable-length float"),
    (
      [([0.1], [1])],
      [0],
      {"units_dtype": np.float32},
      "spikes/units must hold variable-length int",
    ),
    ([([0.1], [1])], [0], {"labels_dtype": np.float32}, "labels must hold integers"),
  ],
)
def test_malformed_files_are_refused_naming_the_problem(
  tmp_path, samples, labels, options, message
):
  _refused(write_shd(tmp_path / "bad.h5", samples, labels, **options), message)


def test_files_that_are_not_shd_are_refused(tmp_path):
  (tmp_path / "junk.h5").write_bytes(b"not an HDF5 file" * 64)
  _refused(tmp_path / "junk.h5", "not a readable HDF5 file")
  with h5py.File(tmp_path / "no_labels.h5", "w") as f:
    f.create_dataset("spikes/times", (1,), dtype=h5py.vlen_dtype(np.float32))
    f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.uint16))
  _refused(tmp_path / "no_labels.h5", "no dataset 'labels'")


@pytest.mark.slow
def test_a_huge_declared_size_is_refused_before_it_is_read(tmp_path):
  # 10^12 samples declared (chunked, never written: a file of a few KB); reading the labels
  # alone would take 1 TB.
  path = tmp_path / "huge.h5"
  huge = 10**12
  with h5py.File(path, "w") as f:
    for key, dtype in (("times", np.float32), ("units", np.uint16)):
      f.create_dataset(f"spikes/{key}", (huge,), dtype=h5py.vlen_dtype(dtype), chunks=(1024,))
    f.create_dataset("labels", (huge,), dtype=np.uint8, chunks=(1024,))
  assert path.stat().st_size < 2**20
  result = bombs.refused(
    "tests.support.shd_files", "read_all", path, error="CorruptDatasetError", names="declares"
  )
  assert result["s"] < 5
