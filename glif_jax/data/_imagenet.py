"""The GLIF authors' ImageNet crops, on decoded uint8 images (as torchvision on PIL images).

Their ``data_builder.py``: training ``RandomResizedCrop(224, scale=(0.2, 1.0))`` then
``RandomHorizontalFlip()``; evaluation ``Resize(256)`` then ``CenterCrop(224)``. Resizes
use PIL's bilinear filter, which is what torchvision calls for PIL images. Both functions
return uint8 ``[224, 224, 3]``; scaling to [0, 1] and the per-channel normalisation are
left to the input pipeline, as for every other image data set.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

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
  top, left, h, w = resized_crop_box(*image.shape[:2], rng)
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
