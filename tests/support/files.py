"""Writers of small data files in the real formats (MNIST, Fashion-MNIST, CIFAR, CIFAR10-DVS,
DVS128 Gesture, ILSVRC2012), for the tests that build or break data sets."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Float32 images holding byte/256, as in mnist.pkl.gz, and int64 labels."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, size=(n, 784))
  return (pixels / 256).astype(np.float32), rng.integers(0, 10, size=n).astype(np.int64)


def write_mnist_pickle(path: Path, sizes=(5, 3, 4)) -> tuple:
  """A gzip'd protocol-4 pickle ((train), (valid), (test)); returns the arrays."""
  parts = tuple(mnist_arrays(n, seed) for seed, n in enumerate(sizes))
  path.parent.mkdir(parents=True, exist_ok=True)
  with gzip.open(path, "wb") as f:
    pickle.dump(parts, f, protocol=4)
  return parts


def write_mnist_wheel(path: Path, pickle_path: Path) -> None:
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("mnist/__init__.py", "raise RuntimeError('must never be imported')\n")
    z.write(pickle_path, "mnist/data/mnist.pkl.gz")


def idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(np.uint8).tobytes()


def write_fashion(directory: Path, n_train: int = 6, n_test: int = 4) -> dict:
  """The four idx .gz files; returns {split: (images [N,28,28], labels)}."""
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(1)
  out = {}
  for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    out[split] = (images, labels)
  return out


def cifar_batch(n: int, seed: int, label_key: bytes, num_classes: int) -> dict:
  rng = np.random.default_rng(seed)
  return {
    b"batch_label": b"fake batch",
    label_key: [int(v) for v in rng.integers(0, num_classes, size=n)],
    b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
    b"filenames": [f"img_{i}.png".encode() for i in range(n)],
  }


def write_tar(path: Path, members: dict[str, bytes]) -> None:
  with tarfile.open(path, "w:gz") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def write_cifar(directory: Path, name: str) -> dict:
  """A tiny official-layout tarball; returns {member: batch dict}."""
  directory.mkdir(parents=True, exist_ok=True)
  if name == "cifar10":
    folder, archive, key, k = "cifar-10-batches-py", "cifar-10-python.tar.gz", b"labels", 10
    batches = {f"data_batch_{i}": cifar_batch(2, i, key, k) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(3, 9, key, k)
  else:
    folder, archive, key, k = "cifar-100-python", "cifar-100-python.tar.gz", b"fine_labels", 100
    batches = {"train": cifar_batch(4, 1, key, k), "test": cifar_batch(3, 2, key, k)}
  members = {f"{folder}/{m}": pickle.dumps(b, protocol=4) for m, b in batches.items()}
  members[f"{folder}/readme.html"] = b"<html></html>"
  write_tar(directory / archive, members)
  return batches


def cifar10_dvs_aedat(events: list[tuple[int, int, int, int]]) -> bytes:
  """(t, x, y, p) events as a CIFAR10-DVS .aedat: '#' header, big-endian addr + ts."""
  header = b"#!AER-DAT2.0\r\n# This is a raw AE data file created by saveaerdat.m\r\n"
  words = []
  for t, x, y, p in events:
    addr = ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)
    words += [addr, t]
  return header + struct.pack(f">{len(words)}I", *words)


def aedat31(events: list[tuple[int, int, int, int]], *, packet: int = 3) -> bytes:
  """(t, x, y, p) polarity events as AEDAT 3.1, in packets of ``packet`` events,
  with a special-event packet (type 0) in front to be skipped."""
  out = [b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"]
  out.append(struct.pack("<HHIIIIII", 0, 1, 8, 4, 0, 1, 1, 1) + struct.pack("<II", 7, 0))
  for start in range(0, len(events), packet):
    chunk = events[start : start + packet]
    out.append(struct.pack("<HHIIIIII", 1, 1, 8, 4, 0, len(chunk), len(chunk), len(chunk)))
    for t, x, y, p in chunk:
      out.append(struct.pack("<II", (x << 17) | (y << 2) | (p << 1) | 1, t))
  return b"".join(out)


CIFAR10_DVS_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def dvs_sample(label: int, index: int) -> list[tuple[int, int, int, int]]:
  """8 events: pixel (x=label, y=index) on, t = 0, 10, ..., 70."""
  return [(10 * i, label, index, i % 2) for i in range(8)]


def write_cifar10_dvs(directory: Path, per_class: int = 3, zipped: tuple[str, ...] = ()) -> None:
  """``per_class`` files per class, named cifar10_<class>_<i>.aedat; classes in
  ``zipped`` are written as <class>.zip instead of a folder."""
  for label, cls in enumerate(CIFAR10_DVS_CLASSES):
    files = {
      f"cifar10_{cls}_{i}.aedat": cifar10_dvs_aedat(dvs_sample(label, i)) for i in range(per_class)
    }
    if cls in zipped:
      with zipfile.ZipFile(directory / f"{cls}.zip", "w") as z:
        for fname, data in files.items():
          z.writestr(f"{cls}/{fname}", data)
    else:
      (directory / cls).mkdir(parents=True, exist_ok=True)
      for fname, data in files.items():
        (directory / cls / fname).write_bytes(data)


def write_dvs_gesture(directory: Path, *, as_tar: bool) -> None:
  """Two recordings (one train, one test), each with two labelled windows."""
  files: dict[str, bytes] = {}
  for user, split in (("user01_lab", "train"), ("user24_led", "test")):
    events = [(t, t % 128, (t // 10) % 128, t % 2) for t in range(100, 400, 10)]
    files[f"DvsGesture/{user}.aedat"] = aedat31(events)
    files[f"DvsGesture/{user}_labels.csv"] = (
      b"class,startTime_usec,endTime_usec\n3,100,200\n11,250,400\n"
    )
    files[f"DvsGesture/trials_to_{split}.txt"] = f"{user}.aedat\n".encode()
  if as_tar:
    write_tar(directory / "DvsGesture.tar.gz", files)
  else:
    for name, data in files.items():
      (directory / name).parent.mkdir(parents=True, exist_ok=True)
      (directory / name).write_bytes(data)


def jpeg_bytes(image: np.ndarray) -> bytes:
  out = io.BytesIO()
  Image.fromarray(image).save(out, "JPEG", quality=95)
  return out.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
  """An uncompressed tar (as ImageNet's) holding ``members`` in this order."""
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return out.getvalue()


IMAGENET_SYNSETS = ("n01440764", "n01443537")  # labels 0 and 1 in TFDS's labels.txt


def write_ilsvrc(directory: Path, per_class: int = 2, num_val: int = 3) -> dict[str, np.ndarray]:
  """A tiny ILSVRC2012 manual directory, as TFDS's imagenet2012 expects it.

  ``ILSVRC2012_img_train.tar`` holds one ``<synset>.tar`` per class of
  ``<synset>_<k>.JPEG`` files; ``ILSVRC2012_img_val.tar`` holds
  ``ILSVRC2012_val_<8 digits>.JPEG`` files (their labels come from TFDS's own
  ``validation_labels.txt``). Images are flat colours (exact through JPEG), 6x9 (train)
  and 7x5 (validation). Returns ``{file name: pixels}``.
  """
  directory.mkdir(parents=True, exist_ok=True)
  images: dict[str, np.ndarray] = {}

  def flat(shape, value):
    return np.full((*shape, 3), value, np.uint8)

  train = {}
  for c, synset in enumerate(IMAGENET_SYNSETS):
    names = {f"{synset}_{k}.JPEG": flat((6, 9), 40 * c + 20 * k + 10) for k in range(per_class)}
    images.update(names)
    train[f"{synset}.tar"] = tar_bytes({n: jpeg_bytes(x) for n, x in names.items()})
  val = {f"ILSVRC2012_val_{i:08d}.JPEG": flat((7, 5), 200 + 10 * i) for i in range(1, num_val + 1)}
  images.update(val)
  (directory / "ILSVRC2012_img_train.tar").write_bytes(tar_bytes(train))
  val_tar = tar_bytes({n: jpeg_bytes(x) for n, x in reversed(val.items())})  # order is not used
  (directory / "ILSVRC2012_img_val.tar").write_bytes(val_tar)
  return images
