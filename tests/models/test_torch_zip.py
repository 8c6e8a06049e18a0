"""The PyTorch-free checkpoint reader (`glif_jax.models._torch_zip`) and hostile files:
decompression bombs, lying headers and overflowing layouts are refused before they are
inflated, with short messages naming the entry (bombs in a fresh subprocess, at a peak memory
within 100 MB of its peak after importing the reader: `tests.support.bombs`). One bomb is of
1 GiB; the others, refused whatever their size, are of `BOMB` bytes."""

import pickle
import struct
import zipfile

import numpy as np
import pytest

from glif_jax.models._torch_zip import TorchCheckpointError, load_torch_zip
from tests.support import torch_zip
from tests.support.bombs import BOMB, MAX_MESSAGE, GiB, MiB, refused, zip_bomb


def _one_tensor(path, *, numel=4, size=(4,), stride=(1,), omit=("0",)):
  """A checkpoint {"w": tensor} over storage "0" of ``numel`` float32 (omitted: a bomb's)."""
  storage = torch_zip.Storage("0", np.zeros(numel, np.float32), "FloatStorage")
  torch_zip.write_torch_zip(path, {"w": torch_zip.Tensor(storage, 0, size, stride)}, omit=omit)


_TORCH = ("glif_jax.models._torch_zip", "load_torch_zip")


@pytest.mark.slow
def test_a_byteorder_bomb_is_refused_unread(tmp_path):
  path = tmp_path / "byteorder.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"x": 1}))
  zip_bomb(path, "archive/byteorder", BOMB)
  refused(*_TORCH, path, error="TorchCheckpointError", names="'archive/byteorder'")


@pytest.mark.slow
def test_a_storage_bomb_beyond_its_tensor_is_refused_unread(tmp_path, monkeypatch):
  torch_zip.fake_torch(monkeypatch)
  path = tmp_path / "storage.pth"
  _one_tensor(path)
  zip_bomb(path, "archive/data/0", GiB)  # the 1 GiB; the pickle declares 16 bytes
  result = refused(*_TORCH, path, error="TorchCheckpointError", names="'archive/data/0'")
  assert "more than the 16 bytes it may" in result["outcome"]


@pytest.mark.slow
def test_a_storage_whose_header_lies_inflates_no_more(tmp_path, monkeypatch):
  torch_zip.fake_torch(monkeypatch)
  path = tmp_path / "lying.pth"
  _one_tensor(path)
  zip_bomb(path, "archive/data/0", BOMB)
  raw = bytearray(path.read_bytes())
  central = raw.rindex(b"archive/data/0") - 46  # its central directory record
  assert raw[central : central + 4] == b"PK\x01\x02"
  raw[central + 24 : central + 28] = struct.pack("<I", 16)  # "16 bytes uncompressed"
  path.write_bytes(bytes(raw))
  refused(*_TORCH, path, error="TorchCheckpointError", names="Bad CRC-32 for file 'archive/data/0'")


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
def test_overflowing_sizes_and_strides_are_refused(tmp_path, monkeypatch, offset, size, stride):
  torch_zip.fake_torch(monkeypatch)
  storage = torch_zip.Storage("0", np.zeros(4, np.float32), "FloatStorage")
  torch_zip.write_torch_zip(
    tmp_path / "c.pth", {"w": torch_zip.Tensor(storage, offset, size, stride)}
  )
  with pytest.raises(TorchCheckpointError, match="bad tensor layout|reads past") as err:
    load_torch_zip(tmp_path / "c.pth")
  assert len(str(err.value)) < MAX_MESSAGE


def test_an_overflowing_element_count_is_refused(tmp_path, monkeypatch):
  torch_zip.fake_torch(monkeypatch)
  path = tmp_path / "c.pth"
  _one_tensor(path, omit=())
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


def test_storage_entries_must_hold_exactly_the_declared_bytes(tmp_path, monkeypatch):
  torch_zip.fake_torch(monkeypatch)
  path = tmp_path / "c.pth"
  for stored in (3, 5):
    _one_tensor(path, size=(3,))
    with zipfile.ZipFile(path, "a") as z:
      z.writestr("archive/data/0", np.zeros(stored, np.float32).tobytes())
    with pytest.raises(TorchCheckpointError, match="'archive/data/0'"):
      load_torch_zip(path)


def test_tensors_copying_one_storage_over_and_over_are_refused(tmp_path, monkeypatch):
  torch_zip.fake_torch(monkeypatch)
  storage = torch_zip.Storage("0", np.zeros(MiB, np.float32), "FloatStorage")  # 4 MiB
  views = [torch_zip.Tensor(storage, 0, (MiB,), (1,)) for _ in range(20)]  # 80 MiB of copies
  torch_zip.write_torch_zip(tmp_path / "c.pth", views)
  with pytest.raises(TorchCheckpointError, match="copy more than 67108864 bytes beyond"):
    load_torch_zip(tmp_path / "c.pth")
