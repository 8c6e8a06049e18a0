"""CIFAR-10 and CIFAR-100: the builders, from the python tarballs, with the GLIF authors'
normalisation and training augmentation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import tensorflow_datasets as tfds

from glif_jax.data import _images, _safe, _tfds
from glif_jax.data._info import Augmentation

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (  # the fine labels, in label order
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
    "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
    "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
    "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
    "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip


class Cifar10Builder(_tfds.Builder, skip_registration=True):
  """CIFAR-10 (50k train, 10k test) from the official ``cifar-10-python.tar.gz``."""

  name = "cifar10"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = _tfds.FIRST_RELEASE
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.cifar_how("cifar10")
  HOMEPAGE = _images.CIFAR_URL
  IMAGE_SHAPE = (32, 32, 3)
  CLASS_NAMES = CIFAR10_CLASSES
  # The per-channel statistics of the 50k training images, as the GLIF authors'
  # data_builder.py normalises.
  MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
  # The authors' (data_builder.py) RandomCrop(32, padding=4) + RandomHorizontalFlip.
  AUGMENTATION = Augmentation(4, True)

  def _info(self) -> tfds.core.DatasetInfo:
    return _tfds.image_info(self)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    manual = _tfds.manual_dir(dl_manager, self.name, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    archive = _images.CIFAR_LAYOUTS[self.name].archive
    archive_path = _safe.require_file(manual, archive, how=self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = _images.read_cifar(archive_path, self.name)
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _generate_examples(self, split: _images.ImageSplit) -> Iterator[tuple[int, _tfds.Example]]:
    return _tfds.image_examples(split)


class Cifar100Builder(Cifar10Builder, skip_registration=True):
  """CIFAR-100 (50k train, 10k test, 100 fine labels) from ``cifar-100-python.tar.gz``.

  As TFDS's own ``cifar100``, CIFAR-10's builder with another archive and label set.
  """

  name = "cifar100"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _images.cifar_how("cifar100")
  CLASS_NAMES = CIFAR100_CLASSES
  # The statistics of the 50k training images, rounded as the authors write them.
  MEAN = tuple(v / 255 for v in (129.3, 124.1, 112.4))
  STD = tuple(v / 255 for v in (68.2, 65.4, 70.4))
