"""Fashion-MNIST: the builder, from Debian's idx files, and its normalisation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import tensorflow_datasets as tfds

from glif_jax.data import _images, _tfds

FASHION_MNIST_CLASSES = (
    "t_shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)  # fmt: skip


class FashionMnistBuilder(_tfds.Builder, skip_registration=True):
  """Fashion-MNIST (70k) from the four idx ``.gz`` files (Debian ``dataset-fashion-mnist``)."""

  name = "fashion_mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _tfds.FIRST_RELEASE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.FASHION_MNIST_HOW
  MANUAL_DIR = _images.FASHION_MNIST_DIR
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = FASHION_MNIST_CLASSES
  # The values every PyTorch/JAX example uses (measured on these files: 0.2860/0.3530).
  MEAN, STD = (0.2860,), (0.3530,)

  def _info(self) -> tfds.core.DatasetInfo:
    return _tfds.image_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = _images.read_fashion_mnist(manual)
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, _tfds.Example]]:
    return _tfds.image_examples(split)
