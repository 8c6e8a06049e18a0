"""ImageNet through TFDS's own imagenet2012 builder, from a tiny fake ILSVRC2012 layout."""

import sys

import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import _imagenet
from tests.support import files as fmt


def _records(source):
  return {source[i]["file_name"].item().decode(): source[i] for i in range(len(source))}


def test_imagenet2012_from_manual_dir_without_tensorflow(tmp_path, data_dir):
  written = fmt.write_ilsvrc(tmp_path / "ilsvrc")
  splits = data.load("imagenet2012", data_dir=data_dir, manual_dir=tmp_path / "ilsvrc")
  train, test = _records(splits["train"]), _records(splits["test"])
  assert len(train) == 4 and len(test) == 3
  for name, pixels in written.items():
    record = (train | test)[name]
    assert record["image"].dtype == np.uint8 and record["image"].shape == pixels.shape
    np.testing.assert_allclose(record["image"], pixels, atol=2)  # flat colours through JPEG
  # Training labels: the synset's line in TFDS's labels.txt (n01440764 is line 1,
  # n01443537 line 2). Validation labels: TFDS's validation_labels.txt gives the sorted
  # file names the synsets n01751748, n09193705, n02105855, lines 66, 971 and 231 of
  # labels.txt (ILSVRC2012_val_00000001 is the well-known class 65, "sea snake").
  labels = {name: int(r["label"]) for name, r in (train | test).items()}
  assert labels == {
    "n01440764_0.JPEG": 0,
    "n01440764_1.JPEG": 0,
    "n01443537_0.JPEG": 1,
    "n01443537_1.JPEG": 1,
    "ILSVRC2012_val_00000001.JPEG": 65,
    "ILSVRC2012_val_00000002.JPEG": 970,
    "ILSVRC2012_val_00000003.JPEG": 230,
  }
  # The layout `tfds build imagenet2012 --file_format=array_record` writes.
  assert (data_dir / "imagenet2012" / "5.1.0" / "dataset_info.json").is_file()
  assert "tensorflow" not in sys.modules


def test_imagenet2012_missing_archive_is_named(tmp_path, data_dir):
  fmt.write_ilsvrc(tmp_path)
  (tmp_path / "ILSVRC2012_img_val.tar").unlink()
  with pytest.raises(data.DatasetNotFoundError, match="ILSVRC2012_img_val.tar"):
    data.load("imagenet2012", data_dir=data_dir, manual_dir=tmp_path)


def test_info_imagenet2012():
  info = data.info("imagenet2012")
  assert info.num_classes == 1000 and info.input_shape == (224, 224, 3)
  assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)


def _ramp(height, width):
  """uint8 [H, W, 3]: row index in channel 0, column index in channel 1."""
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  return np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)


def test_eval_image_center_crop_without_resize():
  # Shorter side already 256: no resize; the crop starts at round((256 - 224) / 2) = 16
  # and round((300 - 224) / 2) = 38.
  image = _ramp(256, 300)
  np.testing.assert_array_equal(_imagenet.eval_image(image), image[16:240, 38:262])


def test_eval_image_resizes_the_shorter_side():
  # 128 x 200 -> 256 x int(256 * 200 / 128) = 256 x 400, then the central 224 x 224.
  # A flat image stays flat.
  out = _imagenet.eval_image(np.full((128, 200, 3), 77, np.uint8))
  np.testing.assert_array_equal(out, np.full((224, 224, 3), 77, np.uint8))


def test_train_image_whole_box_is_the_image_or_its_mirror():
  # scale = ratio = 1 on a square image: the box is the whole image and the resize to
  # 224 is the identity, so the output is the image or its left-right mirror.
  image = _ramp(224, 224)
  box = _imagenet.resized_crop_box(224, 224, np.random.default_rng(0), scale=(1, 1), ratio=(1, 1))
  assert box == (0, 0, 224, 224)
  seen = set()
  for seed in range(8):
    out = _imagenet.train_image(image, np.random.default_rng(seed))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    seen.add(bool(out[0, 0, 1] > out[0, -1, 1]))  # mirrored: column index decreasing
  assert seen == {True, False}


def test_resized_crop_box_fits_and_falls_back_to_the_centre():
  rng = np.random.default_rng(1)
  for _ in range(50):
    top, left, h, w = _imagenet.resized_crop_box(50, 80, rng)
    assert 0 <= top <= 50 - h and 0 <= left <= 80 - w
    assert 0.2 * 4000 * 0.7 <= h * w <= 4000  # area fraction in [0.2, 1], up to rounding
  # A 10 x 1000 strip fits no box of aspect ratio in [3/4, 4/3] with area >= 20 % of it:
  # the fallback is the central 10 x round(10 * 4/3) = 10 x 13 box.
  assert _imagenet.resized_crop_box(10, 1000, rng) == (0, (1000 - 13) // 2, 10, 13)
