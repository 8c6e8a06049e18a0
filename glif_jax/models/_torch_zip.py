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
"""

from __future__ import annotations

import collections
import math
import os
import pickle
import posixpath
import re
import zipfile
import zlib
from typing import Any

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


class _StorageType:
  """What ``torch.<Name>Storage`` resolves to: only its element dtype (no ``__dict__``)."""

  __slots__ = ("dtype", "name")

  def __init__(self, name: str, dtype: Any):
    self.name = name
    self.dtype = np.dtype(dtype)


def _check_entry_names(names: list[str], path: str) -> str:
  """Returns the archive's record prefix; refuses entries that could leave the archive."""
  for name in names:
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or re.match(r"[A-Za-z]:", name):
      raise TorchCheckpointError(f"{path}: refusing the archive entry {name!r} (a path outside it)")
  pickles = [n for n in names if posixpath.basename(n) == "data.pkl" and n.count("/") == 1]
  if len(pickles) != 1:
    raise TorchCheckpointError(
      f"{path}: expected one '<prefix>/data.pkl' entry in a PyTorch zip checkpoint, "
      f"found {pickles or 'none'}"
    )
  prefix = posixpath.dirname(pickles[0])
  stray = [n for n in names if not n.startswith(prefix + "/")]
  if stray:
    raise TorchCheckpointError(f"{path}: entries outside '{prefix}/': {stray[:3]}")
  return prefix


class _Unpickler(pickle.Unpickler):
  """Resolves only PyTorch's tensor, storage and ordered-dict globals; storages from the zip."""

  def __init__(self, archive: zipfile.ZipFile, prefix: str, path: str, byteorder: str):
    super().__init__(archive.open(f"{prefix}/data.pkl"))
    self._archive = archive
    self._prefix = prefix
    self._path = path
    self._byteorder = "<" if byteorder == "little" else ">"
    self._storages: dict[str, np.ndarray] = {}
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
        f"{self._path}: refusing to load the global {module}.{name}; only PyTorch's tensor, "
        "storage and OrderedDict globals are allowed"
      ) from None

  def persistent_load(self, pid: Any) -> np.ndarray:
    """``('storage', <Name>Storage, key, location, numel)`` -> a flat NumPy array."""
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
      raise TorchCheckpointError(f"{self._path}: unknown persistent id {pid!r}")
    _, storage_type, key, _, numel = pid
    if not isinstance(storage_type, _StorageType):
      raise TorchCheckpointError(
        f"{self._path}: storage type {storage_type!r} is not a torch storage"
      )
    if not (isinstance(key, str) and _STORAGE_KEY.fullmatch(key)):
      raise TorchCheckpointError(f"{self._path}: refusing the storage key {key!r}")
    if key not in self._storages:
      entry = f"{self._prefix}/data/{key}"
      try:
        raw = self._archive.read(entry)
      except KeyError:
        raise TorchCheckpointError(f"{self._path}: storage {entry!r} is missing") from None
      dtype = storage_type.dtype.newbyteorder(self._byteorder)
      if not isinstance(numel, int) or numel < 0 or len(raw) < numel * dtype.itemsize:
        raise TorchCheckpointError(
          f"{self._path}: storage {entry!r} holds {len(raw)} bytes, expected {numel} "
          f"{storage_type.name} elements"
        )
      self._storages[key] = np.frombuffer(raw, dtype, count=numel).astype(dtype.newbyteorder("="))
    return self._storages[key]

  def _rebuild_tensor(
    self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any, *_
  ) -> np.ndarray:
    """``_rebuild_tensor_v2``: a copy of the strided view ``storage[offset:]``."""
    if not isinstance(storage, np.ndarray):
      raise TorchCheckpointError(f"{self._path}: a tensor must rebuild from a storage")
    dims = (offset, *size, *stride) if isinstance(size, tuple) and isinstance(stride, tuple) else ()
    if not dims or len(size) != len(stride) or any(not isinstance(d, int) or d < 0 for d in dims):
      raise TorchCheckpointError(
        f"{self._path}: bad tensor layout offset={offset!r} size={size!r} stride={stride!r}"
      )
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.size or math.prod(size) > storage.size:  # the latter: a stride-0 blow-up
      raise TorchCheckpointError(
        f"{self._path}: tensor of size {size} and stride {stride} at offset {offset} reads past "
        f"its storage of {storage.size} elements"
      )
    itemsize = storage.dtype.itemsize
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
      prefix = _check_entry_names(archive.namelist(), path)
      byteorder = _read_byteorder(archive, prefix, path)
      return _Unpickler(archive, prefix, path, byteorder).load()
  except TorchCheckpointError:
    raise
  except (zipfile.BadZipFile, zlib.error) as e:
    raise TorchCheckpointError(
      f"{path}: not a PyTorch zip checkpoint ({e}); files from torch.save before PyTorch 1.6 "
      "must be re-saved with a newer PyTorch"
    ) from e
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
    raise TorchCheckpointError(
      f"{path}: corrupt checkpoint pickle ({type(e).__name__}: {e})"
    ) from e


def _read_byteorder(archive: zipfile.ZipFile, prefix: str, path: str) -> str:
  try:
    byteorder = archive.read(f"{prefix}/byteorder").decode("ascii", "replace").strip()
  except KeyError:
    return "little"
  if byteorder not in ("little", "big"):
    raise TorchCheckpointError(f"{path}: byteorder must be 'little' or 'big', got {byteorder!r}")
  return byteorder
