"""The grain input pipeline: determinism per (seed, epoch, batch), shapes, augmentation, and
each process's rows of a global batch."""

import numpy as np
import pytest

from glif_jax import data
from glif_jax.data._pipeline import crop_flip
from tests.support import files as fmt


def _images(n, shape=(32, 32, 3)):
  """Records whose every pixel encodes the record index (to track order)."""
  return [{"image": np.full(shape, i, np.uint8), "label": np.int64(i % 10)} for i in range(n)]


def _source(records, dataset="cifar10"):
  """``records`` as a split of ``dataset`` (a prepared split as it is)."""
  if isinstance(records, data.RecordSource):
    return records
  return data.RecordSource(records, data.info(dataset))


def _batches(records, dataset="cifar10", **kw):
  kw = {"batch_size": 4, "seed": 0, "epoch": 0, "train": True} | kw
  return list(data.make_batches(_source(records, dataset), **kw))


def _equal(a, b):
  return len(a) == len(b) and all(
    x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
  )


def test_same_seed_epoch_batch_gives_identical_batches():
  src = _images(23)
  assert _equal(_batches(src), _batches(src))
  assert not _equal(_batches(src, epoch=0), _batches(src, epoch=1))
  assert not _equal(_batches(src, seed=0), _batches(src, seed=1))


def test_start_batch_equals_skipping():
  src = _images(23)
  full = _batches(src, epoch=3)
  assert len(full) == 5 == data.num_batches(src, batch_size=4, train=True)
  assert _equal(_batches(src, epoch=3, start_batch=2), full[2:])
  assert _batches(src, start_batch=5) == []
  with pytest.raises(ValueError, match="start_batch"):
    data.make_batches(_source(src), batch_size=4, seed=0, epoch=0, train=True, start_batch=6)


def test_threads_give_the_same_batches():
  src = _images(23)
  assert _equal(_batches(src, epoch=2, num_threads=2), _batches(src, epoch=2))


def test_epoch_is_a_permutation_and_normalised():
  src = _images(20, shape=(28, 28, 1))
  batches = _batches(src, dataset="mnist")
  mean, std = data.info("mnist").mean[0], data.info("mnist").std[0]
  for b in batches:
    assert b["image"].dtype == np.float32 and b["image"].shape == (4, 28, 28, 1)
    assert b["label"].dtype == np.int32 and b["label"].shape == (4,)
  ids = np.concatenate([np.rint((b["image"][:, 0, 0, 0] * std + mean) * 255) for b in batches])
  assert sorted(ids.astype(int)) == list(range(20))  # no augmentation for mnist
  assert list(ids) != list(range(20))  # shuffled


def test_cifar_augmentation_keeps_shape_and_is_seeded():
  rng = np.random.default_rng(0)
  src = [
    {"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "label": np.int64(1)}
    for _ in range(8)
  ]
  a = _batches(src, batch_size=8)
  plain = _batches(src, batch_size=8, augmentation=data.Augmentation())
  assert a[0]["image"].shape == (8, 32, 32, 3)
  assert _equal(a, _batches(src, batch_size=8))
  assert not np.array_equal(a[0]["image"], plain[0]["image"])


def test_random_crop_flip():
  image = np.arange(4 * 4, dtype=np.uint8).reshape(4, 4, 1) + 1
  seen = set()
  for seed in range(40):
    out = data.random_crop_flip(image, np.random.default_rng(seed), padding=1)
    assert out.shape == image.shape and out.dtype == image.dtype
    seen.add(out.tobytes())
    # The crop is a shifted window of the padded image: its non-zero part is a
    # contiguous block of the original (or its mirror).
    rows, cols = np.nonzero(out[..., 0])
    block = out[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1, 0]
    assert any(
      np.array_equal(block, window[r : r + block.shape[0], c : c + block.shape[1]])
      for window in (image[..., 0], image[:, ::-1, 0])
      for r in range(5 - block.shape[0])
      for c in range(5 - block.shape[1])
    )
  assert len(seen) > 10


def test_eval_covers_every_example_with_mask():
  src = _images(10)
  batches = _batches(src, train=False)
  assert len(batches) == 3 == data.num_batches(src, batch_size=4, train=False)
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.dtype == np.bool_ and mask.tolist() == [True] * 10 + [False] * 2
  labels = np.concatenate([b["label"] for b in batches])[mask]
  np.testing.assert_array_equal(labels, [i % 10 for i in range(10)])  # in order, unaugmented
  assert np.all(batches[-1]["image"][2:] == 0)
  assert _equal(batches, _batches(src, train=False, seed=5, epoch=7))


def test_event_frames_pass_through_batch_major():
  frames = np.arange(3 * 4 * 4 * 2, dtype=np.uint16).reshape(3, 4, 4, 2)
  src = [{"frames": frames, "label": np.int64(2)} for _ in range(6)]
  b = _batches(src, batch_size=2, dataset="cifar10_dvs", augmentation=data.Augmentation())[0]
  assert b["image"].shape == (2, 3, 4, 4, 2) and b["image"].dtype == np.float32
  np.testing.assert_array_equal(b["image"][1], frames.astype(np.float32))


def test_crop_flip_of_event_frames_shares_the_offset_over_time():
  # Two samples of T = 2 frames 3x3 (frame 1 = 10 x frame 0), padding 1. Sample 0: top 2,
  # left 0, no flip; the padded frame 0 has rows 0 0 0 0 0 / 0 1 2 3 0 / 0 4 5 6 0 /
  # 0 7 8 9 0 / 0 0 0 0 0, so its window at rows 2-4, cols 0-2 is 0 4 5 / 0 7 8 / 0 0 0.
  # Sample 1: top 0, left 1, then mirrored: 0 0 0 / 1 2 3 / 4 5 6 -> 0 0 0 / 3 2 1 / 6 5 4.
  frame = np.arange(1, 10).reshape(3, 3, 1)
  frames = np.stack([frame, 10 * frame])[None].repeat(2, axis=0)  # [B=2, T=2, 3, 3, 1]
  out = crop_flip(frames, np.array([2, 0]), np.array([0, 1]), np.array([False, True]), 1)
  first = np.array([[0, 4, 5], [0, 7, 8], [0, 0, 0]])
  second = np.array([[0, 0, 0], [3, 2, 1], [6, 5, 4]])
  for t, scale in enumerate((1, 10)):
    np.testing.assert_array_equal(out[0, t, ..., 0], scale * first)
    np.testing.assert_array_equal(out[1, t, ..., 0], scale * second)


def _window(padded, crop):
  """``(top, left)`` of the windows of ``padded [T, H', W', C]`` equal to ``crop [T, H, W, C]``."""
  h, w = crop.shape[1:3]
  tops, lefts = range(padded.shape[1] - h + 1), range(padded.shape[2] - w + 1)
  return [
    (i, j) for i in tops for j in lefts if np.array_equal(padded[:, i : i + h, j : j + w], crop)
  ]


def test_cifar10_dvs_training_crop_is_the_authors():
  # cifar10dvs/train.py --dsr_da: RandomCrop(48, padding=4) of the [T, C, H, W] tensor, no
  # flip. Each cropped sample is one window of its 4-px padded frames, the same for all T
  # (the frames are compared as one [T, H, W, C] block), never mirrored (values increase
  # along W), at offsets in [0, 8] that differ between samples.
  frames = (1 + np.arange(2 * 8 * 8 * 2).reshape(2, 8, 8, 2)).astype(np.float32)
  src = [{"frames": frames, "label": np.int64(0)} for _ in range(16)]
  batch = _batches(src, batch_size=16, dataset="cifar10_dvs")[0]["image"]
  padded = np.pad(frames, ((0, 0), (4, 4), (4, 4), (0, 0)))
  windows = [_window(padded, crop) for crop in batch]
  assert all(len(w) == 1 for w in windows)
  assert len({w[0] for w in windows}) > 4
  assert data.info("cifar10_dvs").augmentation == data.Augmentation(4, False)
  assert data.info("mnist").augmentation == data.Augmentation(0, False)


def test_negative_crop_padding_is_refused():
  with pytest.raises(ValueError, match="crop_padding must be >= 0, got -1"):
    _batches(_images(4), augmentation=data.Augmentation(-1, False))


def test_too_few_training_records():
  with pytest.raises(ValueError, match="cannot fill one batch"):
    data.make_batches(_source(_images(3)), batch_size=4, seed=0, epoch=0, train=True)


def test_pipeline_on_a_prepared_source(tmp_path, data_dir):
  fmt.write_cifar(tmp_path, "cifar10")
  splits = data.load("cifar10", data_dir=data_dir, manual_dir=tmp_path)
  train = _batches(splits["train"], batch_size=5)
  assert len(train) == 2 and train[0]["image"].shape == (5, 32, 32, 3)
  assert _equal(train, _batches(splits["train"], batch_size=5))
  test = _batches(splits["test"], batch_size=2, train=False)
  assert [b["mask"].tolist() for b in test] == [[True, True], [True, False]]


def test_crop_flip_of_a_batch_is_each_image_cropped_then_mirrored():
  images = np.random.default_rng(0).integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
  top, left, flip = np.array([0, 4, 2, 1, 3]), np.array([4, 0, 1, 3, 2]), np.array([0, 1, 1, 0, 1])
  out = crop_flip(images, top, left, flip.astype(bool), 2)
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(5):
    crop = padded[i, top[i] : top[i] + 6, left[i] : left[i] + 7]
    np.testing.assert_array_equal(out[i], crop[:, ::-1] if flip[i] else crop)


@pytest.mark.parametrize("train", [True, False])
def test_a_process_reads_its_rows_with_the_values_of_the_whole_batch(train):
  rng = np.random.default_rng(0)
  src = [
    {"image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "label": np.int64(i % 10)}
    for i in range(22)
  ]
  whole = _batches(src, batch_size=8, train=train, epoch=1)
  for rows in (slice(0, 4), slice(4, 8), slice(2, 6)):
    part = _batches(src, batch_size=8, train=train, epoch=1, rows=rows)
    assert _equal(part, [{k: v[rows] for k, v in b.items()} for b in whole])


def _ramps(sizes):
  """uint8 [H, W, 3] records: row index, column index and record index in the channels."""
  records = []
  for i, (h, w) in enumerate(sizes):
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    image = np.stack([rows % 256, cols % 256, np.full_like(rows, i)], -1).astype(np.uint8)
    records.append({"image": image, "label": np.int64(i)})
  return records


def test_imagenet_eval_batches_are_each_record_resized_and_centre_cropped():
  src = _ramps([(300, 260), (256, 400), (7, 5)])
  batches = _batches(src, batch_size=2, train=False, dataset="imagenet2012")
  info = data.info("imagenet2012")
  mean, std = np.asarray(info.mean, np.float32), np.asarray(info.std, np.float32)
  images = np.concatenate([b["image"] for b in batches])
  assert images.shape == (4, 224, 224, 3)
  for record, image in zip(src, images):
    expected = (data.imagenet_eval_image(record["image"]) / 255 - mean) / std
    np.testing.assert_allclose(image, expected, rtol=1e-5, atol=1e-5)
  assert np.all(images[3] == 0)  # padding


def test_imagenet_training_crops_are_per_example_and_per_process_independent():
  src = _ramps([(60, 90)] * 8)  # identical pictures (channel 2 aside)
  whole = _batches(src, batch_size=4, dataset="imagenet2012", seed=3)
  assert whole[0]["image"].shape == (4, 224, 224, 3)
  crops = {b["image"][i, ..., :2].tobytes() for b in whole for i in range(4)}
  assert len(crops) == 8  # every example its own box
  for rows in (slice(0, 2), slice(1, 3)):
    part = _batches(src, batch_size=4, dataset="imagenet2012", seed=3, rows=rows)
    assert _equal(part, [{k: v[rows] for k, v in b.items()} for b in whole])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_record_with_a_non_finite_input_is_refused_naming_it(bad):
  records = [{"image": np.full((4, 4, 1), 0.5, np.float32), "label": np.int64(0)} for _ in range(6)]
  records[4]["image"][1, 2, 0] = bad
  source = data.RecordSource(records, data.info("synthetic", image_size=4, num_classes=2))
  first = next(data.make_batches(source, batch_size=4, seed=0, epoch=0, train=False))
  assert np.all(first["image"] == 0.5)  # records 0-3
  with pytest.raises(
    data.CorruptDatasetError,
    match=r"^record 4 of the data set 'synthetic': its input holds 1 NaN or inf",
  ):
    list(data.make_batches(source, batch_size=4, seed=0, epoch=0, train=False))
