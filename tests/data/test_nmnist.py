"""N-MNIST: ATIS ``.bin`` recordings written here in the official format, counted by hand."""

import contextlib
import zipfile

import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import _nmnist
from glif_jax.training import validate_config, validate_input_shape
from glif_jax.training.config import default_config
from glif_jax.training.input_pipeline import dataset_names
from tests.support.smoke import checked

TRAIN = {0: 2, 1: 2, 7: 1}  # digit -> recordings
TEST = {2: 1, 9: 1}


def atis_bin(events):
  """(t, x, y, p) events as ATIS .bin bytes: 40-bit big-endian x | y | p | 23-bit t."""
  return b"".join(
    ((x << 32) | (y << 24) | (p << 23) | t).to_bytes(5, "big") for t, x, y, p in events
  )


def recording(digit, index):
  """5 events: two at (x=digit, y=index), two in opposite corners, one at t=100."""
  return [
    (0, digit, index, 0), (10, digit, index, 1),
    (20, 33, 0, 1), (30, 0, 33, 0),
    (100, digit, index, 1),
  ]  # fmt: skip


def write_tree(root, *, zipped, corrupt=None):
  """Train/ and Test/ of <digit>/<index>.bin files (or Train.zip and Test.zip holding
  them); ``corrupt`` replaces the contents of Test/9/00000.bin."""
  for folder, digits in (("Train", TRAIN), ("Test", TEST)):
    files = {
      f"{folder}/{d}/{i:05d}.bin": atis_bin(recording(d, i))
      for d, n in digits.items()
      for i in range(n)
    }
    files[f"{folder}/0/notes.txt"] = b"not a recording"
    if corrupt is not None and folder == "Test":
      files["Test/9/00000.bin"] = corrupt
    if zipped:
      with zipfile.ZipFile(root / f"{folder}.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in files.items():
          z.writestr(name, payload)
    else:
      for name, payload in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)


def _nonzero(frames):
  """{(frame, row, column, polarity): count} of the non-zero entries."""
  return {tuple(int(i) for i in k): int(frames[k]) for k in zip(*np.nonzero(frames))}


def test_parse_hand_assembled_bits():
  # x = 3, y = 33, byte 2 = 0x80 | 0x7F (polarity 1, t bits 22-16), then t bits 15-0.
  ev = _nmnist.parse_atis_bin(bytes([3, 33, 0xFF, 0xFF, 0xFE]), name="a.bin")
  assert (ev.t[0], ev.x[0], ev.y[0], ev.p[0]) == (0x7FFFFE, 3, 33, 1)
  ev = _nmnist.parse_atis_bin(bytes([0, 1, 0x01, 0x02, 0x03]), name="a.bin")
  assert (ev.t[0], ev.x[0], ev.y[0], ev.p[0]) == (0x010203, 0, 1, 0)


def test_parse_round_trips_written_events():
  written = recording(7, 4)
  ev = _nmnist.parse_atis_bin(atis_bin(written), name="a.bin")
  np.testing.assert_array_equal(np.stack(ev, 1), np.array(written))


@pytest.mark.parametrize(
  "raw, problem",
  [
    (atis_bin(recording(1, 1))[:-2], r"bad\.bin: 23 bytes, not a whole number of 5-byte"),
    (atis_bin([(0, 34, 0, 0)]), r"bad\.bin: event x = 34 outside \[0, 34\)"),
    (atis_bin([(0, 0, 0, 1), (5, 2, 240, 0)]), r"bad\.bin: event y = 240 outside"),
  ],
)
def test_malformed_recording_is_named(raw, problem):
  with pytest.raises(data.CorruptDatasetError, match=problem):
    _nmnist.parse_atis_bin(raw, name="bad.bin")


@pytest.mark.parametrize("zipped, split_by", [(False, "number"), (True, "time")])
def test_load_hand_counted_frames(tmp_path, data_dir, zipped, split_by):
  write_tree(tmp_path, zipped=zipped)
  splits = data.load(
    "n_mnist", data_dir=data_dir, manual_dir=tmp_path, num_frames=2, split_by=split_by
  )
  assert len(splits["train"]) == 5 and len(splits["test"]) == 2
  records = [splits[s][i] for s in ("train", "test") for i in range(len(splits[s]))]
  # Row = y, column = x. By number: 5 // 2 = 2 events in frame 0, the other 3 in frame 1.
  # By time: dt = (100 - 0) // 2 = 50, so t = 0..30 are frame 0 and t = 100 frame 1.
  corners = {(1, 0, 33, 1): 1, (1, 33, 0, 0): 1} if split_by == "number" else {}
  seen = set()
  for r in records:
    frames, digit = r["frames"], int(r["label"])
    assert frames.shape == (2, 34, 34, 2) and frames.dtype == np.uint16
    index = int(np.nonzero(frames[1, :, digit, 1])[0][0])  # the row y = recording index
    seen.add((digit, index))
    want = {(0, index, digit, 0): 1, (0, index, digit, 1): 1, (1, index, digit, 1): 1, **corners}
    if split_by == "time":
      want |= {(0, 0, 33, 1): 1, (0, 33, 0, 0): 1}
    assert _nonzero(frames) == want
  assert seen == {(0, 0), (0, 1), (1, 0), (1, 1), (7, 0), (2, 0), (9, 0)}


def test_default_is_ten_frames_by_number_at_34(tmp_path, data_dir):
  # N = 5 < T = 10 events: 5 // 10 = 0 per frame, so every event is in the last frame.
  write_tree(tmp_path, zipped=False)
  info = data.info("n_mnist")
  assert info == data.DatasetInfo("n_mnist", 10, (10, 34, 34, 2), True, None, None)
  splits = data.load("n_mnist", data_dir=data_dir, manual_dir=tmp_path)
  frames = splits["test"][0]["frames"]
  assert frames.shape == info.input_shape and not frames[:9].any()
  digit = int(splits["test"][0]["label"])
  assert _nonzero(frames[9:]) == {
    (0, 0, digit, 0): 1, (0, 0, digit, 1): 2, (0, 0, 33, 1): 1, (0, 33, 0, 0): 1,
  }  # fmt: skip


@pytest.mark.parametrize("zipped", [False, True])
def test_corrupt_recording_fails_the_build_naming_it(tmp_path, data_dir, zipped):
  write_tree(tmp_path, zipped=zipped, corrupt=b"\x00" * 12)
  where = r"Test\.zip/Test/9/00000\.bin" if zipped else r"Test/9/00000\.bin"
  with pytest.raises(data.CorruptDatasetError, match=where + ": 12 bytes, not a whole"):
    data.load("n_mnist", data_dir=data_dir, manual_dir=tmp_path, num_frames=2)
  assert not data.builder("n_mnist", data_dir=data_dir, num_frames=2).is_prepared()


@pytest.mark.parametrize("zipped", [False, True])
def test_oversized_recording_is_refused_before_it_is_read(tmp_path, monkeypatch, zipped):
  write_tree(tmp_path, zipped=zipped)
  monkeypatch.setattr(_nmnist, "MAX_RECORDING_BYTES", 24)  # the recordings are 25 bytes

  def no_read(*args, **kwargs):
    raise AssertionError("read")

  monkeypatch.setattr(zipfile.ZipFile, "open", no_read)
  monkeypatch.setattr(type(tmp_path), "read_bytes", no_read)
  archive = tmp_path / "Train.zip"
  with zipfile.ZipFile(archive) if zipped else contextlib.nullcontext() as z:
    recordings = (
      _nmnist.zip_recordings(z, archive=archive, folder="Train")
      if zipped
      else _nmnist.folder_recordings(tmp_path / "Train")
    )
    with pytest.raises(data.CorruptDatasetError, match=r"Train.*/0/00000\.bin: 25 bytes, more"):
      next(recordings)


def test_missing_split_is_named(tmp_path, data_dir):
  write_tree(tmp_path, zipped=True)
  (tmp_path / "Test.zip").unlink()
  with pytest.raises(data.DatasetNotFoundError, match=r"Test/ or Test\.zip not found.*Test\.zip"):
    data.load("n_mnist", data_dir=data_dir, manual_dir=tmp_path)


def test_training_config_accepts_n_mnist():
  config = default_config()
  config.dataset, config.timesteps = "n_mnist", 10
  config.data_options = {"num_frames": 10, "split_by": "time"}
  validate_config(config, dataset_names=dataset_names(), num_devices=1)
  validate_input_shape(
    checked(config), data.info(config.dataset, **config.data_options).input_shape
  )
