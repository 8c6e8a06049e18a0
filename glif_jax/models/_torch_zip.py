"""Reads PyTorch's zip checkpoints (``torch.save`` since 1.6) without PyTorch or its code.

A ``.pth``/``.pth.tar`` file is a zip archive::

    <prefix>/data.pkl        the pickled object (state dicts, optimizer state, numbers)
    <prefix>/data/<key>      one raw storage per key (a flat little-endian array)
    <prefix>/byteorder       "little" or "big" (absent in old files: little)
    <prefix>/version, ...    format records

The pickle refers to storages by persistent id and rebuilds tensors with
``torch._utils._rebuild_tensor_v2``. A pickle may name any importable callable and call it
while loading, so `load_torch_zip` resolves only the globals PyTorch writes for tensors,
storages and ordered dicts, each to a harmless NumPy equivalent; any other global, any
storage not in the archive, or an archive entry outside ``<prefix>/`` is refused before
anything is built from it.

Nothing is inflated beyond what the file declares: each storage entry must hold exactly the
bytes its pickle declares (checked against ``ZipInfo.file_size`` before reading, then read
with that bound), ``data.pkl`` and the small records are capped (`_PICKLE_MAX_BYTES`,
`_RECORD_MAX_BYTES`), and tensors may copy their storages' bytes at most
`_COPY_SLACK_BYTES` beyond the storages' own size. So refusing a crafted file costs about
as much memory as the checkpoint it claims to be.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import posixpath
import re
import zipfile
import zlib
from typing import Any, Literal

import ml_dtypes
import numpy as np


class TorchCheckpointError(ValueError):
  """A file is not a readable PyTorch zip checkpoint, or asks for something forbidden."""


# torch.<Name>Storage -> the NumPy dtype of its elements.
_STORAGE_DTYPES = {
  "DoubleStorage": np.float64,
  "FloatStorage": np.float32,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}

# Storage keys PyTorch writes: decimal numbers (any plain name is accepted, never a path).
_STORAGE_KEY = re.compile(r"[A-Za-z0-9_]+")

# The authors' data.pkl holds 35 kB; a pickle can build ~70 bytes of objects per byte.
_PICKLE_MAX_BYTES = 2**20
# Records of a few bytes each ("little", "3", a 40-digit serialization id).
_RECORDS = (
  "byteorder",
  "version",
  ".format_version",
  ".storage_alignment",
  ".data/serialization_id",
)
_RECORD_MAX_BYTES = 64
# Views of one storage are copied; their bytes beyond the storages' total are capped.
_COPY_SLACK_BYTES = 64 * 2**20
_SHOWN_CHARS = 80


def _clip(text: str) -> str:
  """``text`` cut to `_SHOWN_CHARS` characters: file content never floods a message."""
  return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _read_entry(archive: zipfile.ZipFile, name: str, path: str, *, limit: int) -> bytes:
  """Entry ``name`` of at most ``limit`` bytes, refused from its header before inflating it
  and read with that bound (a lying header inflates no more)."""
  size = archive.getinfo(name).file_size
  if size <= limit:
    with archive.open(name) as f:
      data = f.read(size + 1)  # zipfile stops at `size`; + 1 in case it ever does not
    if len(data) <= limit:
      return data
  raise TorchCheckpointError(
    f"{path}: entry {_clip(repr(name))} holds more than the {limit} bytes it may ({size})"
  )


class _StorageType:
  """What ``torch.<Name>Storage`` resolves to: only its element dtype (no ``__dict__``)."""

  __slots__ = ("dtype", "name")

  def __init__(self, name: str, dtype: Any):
    self.name = name
    self.dtype = np.dtype(dtype)


def _check_entries(infos: list[zipfile.ZipInfo], path: str) -> str:
  """Returns the archive's record prefix; refuses entries that could leave the archive and
  records larger than `_RECORD_MAX_BYTES`."""
  names = [info.filename for info in infos]
  for name in names:
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or re.match(r"[A-Za-z]:", name):
      raise TorchCheckpointError(
        f"{path}: refusing the archive entry {_clip(repr(name))} (a path outside it)"
      )
  pickles = [n for n in names if posixpath.basename(n) == "data.pkl" and n.count("/") == 1]
  if len(pickles) != 1:
    raise TorchCheckpointError(
      f"{path}: expected one '<prefix>/data.pkl' entry in a PyTorch zip checkpoint, "
      f"found {_clip(repr(pickles)) if pickles else 'none'}"
    )
  prefix = posixpath.dirname(pickles[0])
  stray = [n for n in names if not n.startswith(prefix + "/")]
  if stray:
    raise TorchCheckpointError(
      f"{path}: entries outside {_clip(repr(prefix))}/: {_clip(repr(stray[:3]))}"
    )
  records = {f"{prefix}/{r}" for r in _RECORDS}
  for info in infos:
    if info.filename in records and info.file_size > _RECORD_MAX_BYTES:
      raise TorchCheckpointError(
        f"{path}: entry {_clip(repr(info.filename))} holds more than the "
        f"{_RECORD_MAX_BYTES} bytes a record may ({info.file_size})"
      )
  return prefix


class _Unpickler(pickle.Unpickler):
  """Resolves only PyTorch's tensor, storage and ordered-dict globals; storages from the zip."""

  def __init__(self, archive: zipfile.ZipFile, prefix: str, path: str, byteorder: str):
    data = _read_entry(archive, f"{prefix}/data.pkl", path, limit=_PICKLE_MAX_BYTES)
    super().__init__(io.BytesIO(data))
    self._archive = archive
    self._prefix = prefix
    self._path = path
    self._byteorder: Literal["<", ">"] = "<" if byteorder == "little" else ">"
    self._storages: dict[str, np.ndarray] = {}
    self._copy_budget = _COPY_SLACK_BYTES  # grows by each storage's size
    # Fresh functions per load: whatever a crafted BUILD opcode sets on them is discarded
    # with this unpickler (and a builtin class refuses new attributes).
    self._globals: dict[tuple[str, str], Any] = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor_v2"): lambda *args: self._rebuild_tensor(*args),
      ("torch._utils", "_rebuild_parameter"): lambda *args: self._rebuild_parameter(*args),
      **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
    }

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._globals[(module, name)]
    except KeyError:
      raise TorchCheckpointError(
        f"{self._path}: refusing to load the global {_clip(f'{module}.{name}')}; only "
        "PyTorch's tensor, storage and OrderedDict globals are allowed"
      ) from None

  def persistent_load(self, pid: Any) -> np.ndarray:
    """``('storage', <Name>Storage, key, location, numel)`` -> a flat NumPy array."""
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
      raise TorchCheckpointError(f"{self._path}: unknown persistent id {_clip(repr(pid))}")
    _, storage_type, key, _, numel = pid
    if not isinstance(storage_type, _StorageType):
      raise TorchCheckpointError(
        f"{self._path}: storage type {_clip(repr(storage_type))} is not a torch storage"
      )
    if not (isinstance(key, str) and _STORAGE_KEY.fullmatch(key)):
      raise TorchCheckpointError(f"{self._path}: refusing the storage key {_clip(repr(key))}")
    if not isinstance(numel, int) or numel < 0:
      raise TorchCheckpointError(f"{self._path}: storage of {_clip(repr(numel))} elements")
    if key not in self._storages:
      self._storages[key] = self._read_storage(key, storage_type, numel)
      self._copy_budget += self._storages[key].nbytes
    return self._storages[key]

  def _read_storage(self, key: str, storage_type: _StorageType, numel: int) -> np.ndarray:
    """Entry ``data/<key>``, which must hold exactly the bytes of ``numel`` elements."""
    entry = _clip(repr(f"{self._prefix}/data/{key}"))
    dtype = storage_type.dtype.newbyteorder(self._byteorder)
    need = numel * dtype.itemsize
    try:
      raw = _read_entry(self._archive, f"{self._prefix}/data/{key}", self._path, limit=need)
    except KeyError:
      raise TorchCheckpointError(f"{self._path}: storage {entry} is missing") from None
    if len(raw) != need:
      raise TorchCheckpointError(
        f"{self._path}: storage {entry} holds {len(raw)} bytes, expected {numel} "
        f"{storage_type.name} elements ({need} bytes)"
      )
    return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="))

  def _rebuild_tensor(
    self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any, *_
  ) -> np.ndarray:
    """``_rebuild_tensor_v2``: a copy of the strided view ``storage[offset:]``."""
    if not isinstance(storage, np.ndarray):
      raise TorchCheckpointError(f"{self._path}: a tensor must rebuild from a storage")
    itemsize = storage.dtype.itemsize
    top = np.iinfo(np.intp).max // itemsize  # larger sizes and strides overflow NumPy's
    dims = (offset, *size, *stride) if isinstance(size, tuple) and isinstance(stride, tuple) else ()
    if (
      not dims
      or len(size) != len(stride)
      or any(not isinstance(d, int) or not 0 <= d <= top for d in dims)
    ):
      raise TorchCheckpointError(
        f"{self._path}: bad tensor layout "
        + _clip(f"offset={offset!r} size={size!r} stride={stride!r}")
      )
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.size or math.prod(size) > storage.size:  # the latter: a stride-0 blow-up
      raise TorchCheckpointError(
        f"{self._path}: tensor of size {_clip(str(size))} and stride {_clip(str(stride))} at "
        f"offset {offset} reads past its storage of {storage.size} elements"
      )
    self._copy_budget -= math.prod(size) * itemsize
    if self._copy_budget < 0:
      raise TorchCheckpointError(
        f"{self._path}: its tensors copy more than {_COPY_SLACK_BYTES} bytes beyond the size of "
        "their storages"
      )
    view = np.lib.stride_tricks.as_strided(
      storage[offset:],
      shape=size,
      strides=tuple(s * itemsize for s in stride),
      writeable=False,
    )
    return np.array(view)

  def _rebuild_parameter(self, data: Any, requires_grad: Any, hooks: Any) -> np.ndarray:
    """``_rebuild_parameter``: the parameter's data."""
    if not isinstance(data, np.ndarray):
      raise TorchCheckpointError(f"{self._path}: a parameter must rebuild from a tensor")
    return data


def load_torch_zip(path: str | os.PathLike[str]) -> Any:
  """Loads a PyTorch zip checkpoint with every tensor as a NumPy array, running no file code.

  Args:
    path: a ``.pth``/``.pth.tar``/``.pt`` file written by ``torch.save`` (PyTorch >= 1.6).

  Returns:
    The saved object: dicts (``OrderedDict`` for state dicts), lists, numbers, strings, and
    NumPy arrays in place of tensors (same shape and dtype, C-contiguous copies).

  Raises:
    FileNotFoundError: no file at ``path``.
    TorchCheckpointError: not a zip checkpoint, a corrupt one, or one that names a
      forbidden global, a missing storage or an entry outside the archive.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no checkpoint file at {path}")
  try:
    with zipfile.ZipFile(path) as archive:
      prefix = _check_entries(archive.infolist(), path)
      byteorder = _read_byteorder(archive, prefix, path)
      return _Unpickler(archive, prefix, path, byteorder).load()
  except TorchCheckpointError:
    raise
  except (zipfile.BadZipFile, zlib.error) as e:
    raise TorchCheckpointError(
      f"{path}: not a PyTorch zip checkpoint ({_clip(str(e))}); files from torch.save before PyTorch 1.6 "
      "must be re-saved with a newer PyTorch"
    ) from e
  except (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    OverflowError,
  ) as e:
    raise TorchCheckpointError(
      f"{path}: corrupt checkpoint pickle ({type(e).__name__}: {_clip(str(e))})"
    ) from e


def _read_byteorder(archive: zipfile.ZipFile, prefix: str, path: str) -> str:
  try:
    record = _read_entry(archive, f"{prefix}/byteorder", path, limit=_RECORD_MAX_BYTES)
  except KeyError:
    return "little"
  byteorder = record.decode("ascii", "replace").strip()
  if byteorder not in ("little", "big"):
    raise TorchCheckpointError(
      f"{path}: byteorder must be 'little' or 'big', got {_clip(repr(byteorder))}"
    )
  return byteorder
