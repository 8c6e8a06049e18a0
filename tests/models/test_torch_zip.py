"""The PyTorch-free checkpoint reader (`glif_jax.models._torch_zip`): the authors' shared
checkpoints, strided views, dtypes and byte orders, and refusals with clear errors.

Hostile files: decompression bombs, lying headers and overflowing layouts are refused before
they are inflated, with short messages naming the entry (bombs in a fresh subprocess, at a
peak memory within 100 MB of its peak after importing the reader: `tests.support.bombs`).
One bomb is of 1 GiB; the others, refused whatever their size, are of `BOMB` bytes."""

import collections
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

from glif_jax.models._torch_zip import TorchCheckpointError, load_torch_zip
from tests.support.bombs import BOMB, MAX_MESSAGE, GiB, MiB, refused, zip_bomb
from tests.support.shared_checkpoints import RESNET19, SEW_DVS, needs_shared
from tests.support.torch_zip import Storage, Tensor, fake_torch, write_torch_zip

# --- the reader: the shared checkpoints, layouts, dtypes, refusals ---


@needs_shared
def test_reads_the_shared_resnet19_checkpoint():
  sd = load_torch_zip(RESNET19)["state_dict"]
  assert len(sd) == 307 and all(k.startswith("module.") for k in sd)
  kernel = sd["module.conv1.0.0.weight"]
  assert kernel.shape == (128, 3, 3, 3) and kernel.dtype == np.float32
  assert sd["module.conv1.1.conduct"].shape == (4, 128)
  assert sd["module.conv1.0.1.num_batches_tracked"].dtype == np.int64
  assert float(sd["module.conv1.0.1.Vth"]) == 0.5  # tdBN's V_th in their layers.py
  # Every value is bfloat16-exact (their README): a misread byte order or offset would not be.
  assert np.array_equal(kernel, kernel.astype(ml_dtypes.bfloat16).astype(np.float32))


@needs_shared
def test_reads_the_shared_dvs_checkpoint_with_its_training_state():
  ckpt = load_torch_zip(SEW_DVS)
  assert set(ckpt) == {"net", "optimizer", "lr_scheduler", "epoch", "max_test_acc"}
  assert isinstance(ckpt["net"], collections.OrderedDict)
  assert ckpt["net"]["conv.0.1.alpha"].dtype == np.float64  # np.random.rand gates in their code
  assert ckpt["net"]["out.weight"].shape == (10, 128 * 3 * 3)
  assert ckpt["optimizer"]["param_groups"][0]["momentum"] == 0.9
  assert ckpt["lr_scheduler"]["T_max"] == 64
  assert (ckpt["epoch"], ckpt["max_test_acc"]) == (199, 0.781)


def test_strided_views_offsets_shared_storages_and_dtypes(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  flat = np.arange(12, dtype=np.float32)
  s = Storage("0", flat, "FloatStorage")
  obj = {
    "matrix": Tensor(s, 0, (3, 4), (4, 1)),
    "transposed": Tensor(s, 0, (4, 3), (1, 4)),
    "tail": Tensor(s, 10, (2,), (1,)),
    "scalar": Tensor(Storage("1", np.array([7], np.int64), "LongStorage"), 0, (), ()),
    "bf16": Tensor(
      Storage("2", np.array([1.5, -2], ml_dtypes.bfloat16), "BFloat16Storage"), 0, (2,), (1,)
    ),
    "numbers": [1, 2.5, "x", None, True],
  }
  for byteorder in ("little", "big"):
    write_torch_zip(tmp_path / "c.pth", obj, byteorder=byteorder)
    out = load_torch_zip(tmp_path / "c.pth")
    np.testing.assert_array_equal(out["matrix"], flat.reshape(3, 4))
    np.testing.assert_array_equal(out["transposed"], flat.reshape(3, 4).T)
    np.testing.assert_array_equal(out["tail"], [10, 11])
    assert out["scalar"].shape == () and out["scalar"] == 7 and out["scalar"].dtype == np.int64
    assert out["bf16"].dtype == ml_dtypes.bfloat16 and out["bf16"].tolist() == [1.5, -2]
    assert out["numbers"] == [1, 2.5, "x", None, True]
    assert out["matrix"].dtype.isnative and out["matrix"].flags.c_contiguous


class _RunsCode:
  def __init__(self, fn, arg):
    self.fn, self.arg = fn, arg

  def __reduce__(self):
    return self.fn, (self.arg,)


@pytest.mark.parametrize("fn", ["os.system", "builtins.eval", "builtins.exec"])
def test_a_pickle_that_calls_another_global_is_refused_and_nothing_runs(tmp_path, fn):
  marker = tmp_path / "ran"
  code = {
    "os.system": (os.system, f"touch {marker}"),
    "builtins.eval": (eval, f"open({str(marker)!r}, 'w')"),
    "builtins.exec": (exec, f"open({str(marker)!r}, 'w')"),
  }[fn]
  write_torch_zip(tmp_path / "evil.pth", {"state_dict": _RunsCode(*code)})
  with pytest.raises(TorchCheckpointError, match="refusing to load the global"):
    load_torch_zip(tmp_path / "evil.pth")
  assert not marker.exists()


def test_a_storage_key_that_is_a_path_is_refused(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  (tmp_path / "secret").write_bytes(np.zeros(4, np.float32).tobytes())
  s = Storage("../../secret", np.zeros(4, np.float32), "FloatStorage")
  write_torch_zip(tmp_path / "c.pth", {"w": Tensor(s, 0, (4,), (1,))}, omit=(s.key,))
  with pytest.raises(TorchCheckpointError, match="refusing the storage key"):
    load_torch_zip(tmp_path / "c.pth")


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "archive/../../x", "C:/x"])
def test_an_archive_entry_outside_the_archive_is_refused(tmp_path, monkeypatch, name):
  fake_torch(monkeypatch)
  write_torch_zip(tmp_path / "c.pth", {"x": 1}, extra={name: b"0"})
  with pytest.raises(TorchCheckpointError, match="outside"):
    load_torch_zip(tmp_path / "c.pth")


def test_a_missing_storage_is_named(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  s = Storage("0", np.zeros(2, np.float32), "FloatStorage")
  write_torch_zip(tmp_path / "c.pth", {"w": Tensor(s, 0, (2,), (1,))}, omit=("0",))
  with pytest.raises(TorchCheckpointError, match="'archive/data/0' is missing"):
    load_torch_zip(tmp_path / "c.pth")


def test_a_tensor_reading_past_its_storage_is_refused(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  s = Storage("0", np.zeros(6, np.float32), "FloatStorage")
  for offset, size, stride in ((2, (2, 3), (3, 1)), (0, (10**6, 10**6), (0, 0))):
    write_torch_zip(tmp_path / "c.pth", {"w": Tensor(s, offset, size, stride)})
    with pytest.raises(TorchCheckpointError, match="reads past its storage of 6 elements"):
      load_torch_zip(tmp_path / "c.pth")


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  write_torch_zip(tmp_path / "c.pth", {"x": list(range(100))})
  data = (tmp_path / "c.pth").read_bytes()
  (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
  flipped = bytearray(data)
  flipped[data.index(b"data.pkl") + 40] ^= 0xFF  # inside the pickle's bytes: a CRC mismatch
  (tmp_path / "flipped.pth").write_bytes(bytes(flipped))
  (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"x": 1}))
  for name in ("truncated.pth", "flipped.pth", "legacy.pth"):
    with pytest.raises(TorchCheckpointError, match="not a PyTorch zip checkpoint"):
      load_torch_zip(tmp_path / name)
  with zipfile.ZipFile(tmp_path / "nopickle.pth", "w") as z:
    z.writestr("archive/version", "3\n")
  with pytest.raises(TorchCheckpointError, match="expected one '<prefix>/data.pkl'"):
    load_torch_zip(tmp_path / "nopickle.pth")
  with zipfile.ZipFile(tmp_path / "badpickle.pth", "w") as z:
    z.writestr("archive/data.pkl", b"\x80\x02}q\x00(X")
  with pytest.raises(TorchCheckpointError, match="corrupt checkpoint pickle"):
    load_torch_zip(tmp_path / "badpickle.pth")
  with pytest.raises(FileNotFoundError, match="no checkpoint file"):
    load_torch_zip(tmp_path / "absent.pth")


# --- hostile files: refused before they are inflated (`tests.support.bombs`) ---------------


def _one_tensor(path, *, numel=4, size=(4,), stride=(1,), omit=("0",)):
  """A checkpoint {"w": tensor} over storage "0" of ``numel`` float32 (omitted: a bomb's)."""
  storage = Storage("0", np.zeros(numel, np.float32), "FloatStorage")
  write_torch_zip(path, {"w": Tensor(storage, 0, size, stride)}, omit=omit)


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
  fake_torch(monkeypatch)
  path = tmp_path / "storage.pth"
  _one_tensor(path)
  zip_bomb(path, "archive/data/0", GiB)  # the 1 GiB; the pickle declares 16 bytes
  result = refused(*_TORCH, path, error="TorchCheckpointError", names="'archive/data/0'")
  assert "more than the 16 bytes it may" in result["outcome"]


@pytest.mark.slow
def test_a_storage_whose_header_lies_inflates_no_more(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
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
  fake_torch(monkeypatch)
  storage = Storage("0", np.zeros(4, np.float32), "FloatStorage")
  write_torch_zip(tmp_path / "c.pth", {"w": Tensor(storage, offset, size, stride)})
  with pytest.raises(TorchCheckpointError, match="bad tensor layout|reads past") as err:
    load_torch_zip(tmp_path / "c.pth")
  assert len(str(err.value)) < MAX_MESSAGE


def test_an_overflowing_element_count_is_refused(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
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
  fake_torch(monkeypatch)
  path = tmp_path / "c.pth"
  for stored in (3, 5):
    _one_tensor(path, size=(3,))
    with zipfile.ZipFile(path, "a") as z:
      z.writestr("archive/data/0", np.zeros(stored, np.float32).tobytes())
    with pytest.raises(TorchCheckpointError, match="'archive/data/0'"):
      load_torch_zip(path)


def test_tensors_copying_one_storage_over_and_over_are_refused(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  storage = Storage("0", np.zeros(MiB, np.float32), "FloatStorage")  # 4 MiB
  views = [Tensor(storage, 0, (MiB,), (1,)) for _ in range(20)]  # 80 MiB of copies
  write_torch_zip(tmp_path / "c.pth", views)
  with pytest.raises(TorchCheckpointError, match="copy more than 67108864 bytes beyond"):
    load_torch_zip(tmp_path / "c.pth")
