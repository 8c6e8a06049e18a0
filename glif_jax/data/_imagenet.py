"""ImageNet (ILSVRC2012): TFDS's builder preparing without TensorFlow, with the GLIF
authors' normalisation and crops.

The crops work on decoded uint8 images, as torchvision on PIL images. The authors'
``data_builder.py``: training ``RandomResizedCrop(224, scale=(0.2, 1.0))`` then
``RandomHorizontalFlip()``; evaluation ``Resize(256)`` then ``CenterCrop(224)``. Resizes
use PIL's bilinear filter, which is what torchvision calls for PIL images. Both crops
return uint8 ``[224, 224, 3]``; scaling to [0, 1] and the per-channel normalisation are
left to the input pipeline, as for every other image data set.
"""

from __future__ import annotations

import io
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder as tfds_imagenet

from glif_jax.data import _safe, _tfds
from glif_jax.data._errors import CorruptDatasetError

CROP = 224
EVAL_RESIZE = 256
TRAIN_SCALE = (0.2, 1.0)
TRAIN_RATIO = (3 / 4, 4 / 3)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  if image.shape[:2] == (height, width):
    return image
  resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
  return np.asarray(resized)


def resized_crop_box(
  height: int,
  width: int,
  rng: np.random.Generator,
  *,
  scale: tuple[float, float] = TRAIN_SCALE,
  ratio: tuple[float, float] = TRAIN_RATIO,
) -> tuple[int, int, int, int]:
  """``(top, left, h, w)`` of a random crop, as torchvision's ``RandomResizedCrop``.

  Up to 10 tries draw an area fraction from ``U(scale)`` and a log-uniform aspect ratio
  ``w/h`` from ``ratio``, and keep the first box that fits, at a uniform position; if
  none fits, the central box of the image clamped to ``ratio``.
  """
  area = height * width
  log_ratio = np.log(ratio)
  for _ in range(10):
    target_area = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = round(math.sqrt(target_area * aspect))
    h = round(math.sqrt(target_area / aspect))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, round(width / min(ratio))
  elif in_ratio > max(ratio):
    w, h = round(height * max(ratio)), height
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def train_image(image: np.ndarray, rng: np.random.Generator, *, size: int = CROP) -> np.ndarray:
  """Random resized crop to ``size`` x ``size`` and a random horizontal flip.

  Args:
      image: uint8 ``[H, W, 3]``.
      rng: the generator for the box and the flip.
      size: output height and width.

  Returns:
      uint8 ``[size, size, 3]``.
  """
  height, width = image.shape[:2]
  top, left, h, w = resized_crop_box(height, width, rng)
  crop = _resize(image[top : top + h, left : left + w], size, size)
  return crop[:, ::-1] if rng.random() < 0.5 else crop


def eval_image(image: np.ndarray, *, resize: int = EVAL_RESIZE, size: int = CROP) -> np.ndarray:
  """Shorter side resized to ``resize`` (aspect kept), then the central ``size`` x ``size``.

  Args:
      image: uint8 ``[H, W, 3]``.
      resize: the shorter side after resizing (the longer one is truncated, as torchvision).
      size: output height and width.

  Returns:
      uint8 ``[size, size, 3]``.
  """
  height, width = image.shape[:2]
  if height <= width:
    height, width = resize, int(resize * width / height)
  else:
    height, width = int(resize * height / width), resize
  resized = _resize(image, height, width)
  top, left = round((height - size) / 2), round((width - size) / 2)
  return resized[top : top + size, left : left + size]


_TfdsImagenet2012 = tfds_imagenet.Builder  # what tfds.builder_cls("imagenet2012") returns
TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"


def _iter_tar(path: Path) -> Iterator[tuple[str, Any]]:
  """``(member name, file object)`` of a tar file, read as a stream (TFDS's iterator)."""
  with open(path, "rb") as f:
    yield from tfds.download.iter_archive(f, tfds.download.ExtractMethod.TAR_STREAM)


def _validation_labels(val_tar: Path) -> dict[str, str]:
  """TFDS's ``get_validation_labels`` without TensorFlow: sorted member names zipped
  with TFDS's ``validation_labels.txt`` (one synset per validation image, in order)."""
  labels_file = _TfdsImagenet2012._get_pkg_dir_path() / "validation_labels.txt"
  labels = labels_file.read_text().strip().splitlines()
  try:
    with tarfile.open(val_tar, "r:") as tar:
      names = sorted(tar.getnames())
  except (tarfile.TarError, EOFError, OSError) as err:
    raise CorruptDatasetError(val_tar, f"not a readable tar archive ({err})") from err
  return dict(zip(names, labels))


def _jpeg_rgb(data: bytes) -> bytes:
  """Any image PIL reads, re-encoded as an RGB JPEG at quality 100."""
  out = io.BytesIO()
  Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=100)
  return out.getvalue()


class Imagenet2012Builder(_TfdsImagenet2012, _tfds.Builder, skip_registration=True):
  """TFDS's ``imagenet2012`` builder, preparing without TensorFlow.

  ``_info`` (JPEG image, 1000-class label from TFDS's ``labels.txt``, file name),
  ``_generate_examples``, the version (5.1.0) and the split names (``train``,
  ``validation``) are TFDS's own, so the prepared ``imagenet2012/5.1.0`` directory is
  the one ``tfds build imagenet2012 --file_format=array_record`` writes, and either reads
  the other's. Overridden are only the steps where TFDS's builder calls TensorFlow:
  finding the archives (``tf.io.gfile``), reading the validation labels, and re-encoding
  the 22 CMYK JPEGs and one PNG of the training set (``tf.image``; here PIL, so those 23
  images may differ from a TensorFlow-built copy by JPEG rounding).

  The manual directory holds ``ILSVRC2012_img_train.tar`` (one ``<synset>.tar`` per class)
  and ``ILSVRC2012_img_val.tar`` from https://image-net.org/download-images.
  """

  name = "imagenet2012"
  pkg_dir_path = _TfdsImagenet2012._get_pkg_dir_path()  # TFDS's metadata and label files
  CLASS_NAMES = tuple((pkg_dir_path / "labels.txt").read_text().split())  # 1000 synsets
  IMAGE_SHAPE = (CROP, CROP, 3)  # after the crops
  MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's
  EVAL_SPLIT = "validation"
  TRAIN_CROP = staticmethod(train_image)
  EVAL_CROP = staticmethod(eval_image)

  # TFDS's imagenet builder returns a list; GeneratorBasedBuilder also takes this dict.
  def _split_generators(  # pyright: ignore[reportIncompatibleMethodOverride]
    self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, Any]:
    how = " ".join(self.MANUAL_DOWNLOAD_INSTRUCTIONS.split())  # TFDS's text, on one line
    manual = _tfds.manual_dir(dl_manager, self.name, how)
    train = _safe.require_file(manual, TRAIN_TAR, how=how)
    val = _safe.require_file(manual, VAL_TAR, how=how)
    return {
      "train": self._generate_examples(_iter_tar(train)),
      "validation": self._generate_examples(
        _iter_tar(val), validation_labels=_validation_labels(val)
      ),
    }

  def _fix_image(self, image_fname: str, image: Any) -> Any:
    if image_fname in tfds_imagenet.CMYK_IMAGES or image_fname in tfds_imagenet.PNG_IMAGES:
      return io.BytesIO(_jpeg_rgb(image.read()))
    return image
