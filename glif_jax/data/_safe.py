"""Safe readers: a restricted unpickler, safe tar extraction, and file look-ups.

The MNIST ``.pkl.gz`` and the CIFAR python batches are pickles. A pickle can name any
importable callable and run it while loading, so these files are read with
:class:`RestrictedUnpickler`, which admits only the globals NumPy array reconstruction
needs. Containers and scalars (tuple, list, dict, bytes, str, int, float) are built by
the pickle opcodes themselves and need no global.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

try:  # NumPy >= 2
  from numpy._core import multiarray as _multiarray
except ImportError:  # NumPy 1.26
  from numpy.core import multiarray as _multiarray

from glif_jax.data._errors import CorruptDatasetError, DatasetNotFoundError

# (module, name) -> the object it may resolve to. ``numpy.core`` (NumPy 1) and
# ``numpy._core`` (NumPy 2) both map to the installed module, so neither spelling imports
# the deprecated ``numpy.core`` shim.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
  ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
  ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
  ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
  ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
  ("numpy", "ndarray"): np.ndarray,
  ("numpy", "dtype"): np.dtype,
}


class ForbiddenGlobalError(pickle.UnpicklingError):
  """A data pickle names a global outside the allowed NumPy reconstruction set."""


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that resolves only NumPy array-reconstruction globals.

  Args:
      file: binary file object holding the pickle.
      name: the file's name, used in error messages.
      encoding: how to decode Python 2 ``str`` objects (``"latin1"`` for the NumPy
          arrays in Python 2 pickles such as ``mnist.pkl.gz``).
  """

  def __init__(self, file: IO[bytes], *, name: str, encoding: str = "ASCII") -> None:
    super().__init__(file, encoding=encoding)
    self._name = name

  def find_class(self, module: str, name: str) -> Any:
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise ForbiddenGlobalError(
        f"{self._name}: refusing to load the global {module}.{name}; only NumPy "
        "array reconstruction is allowed in data pickles"
      ) from None

  def persistent_load(self, pid: Any) -> Any:
    raise ForbiddenGlobalError(f"{self._name}: persistent ids are not allowed")


def load_pickle(file: IO[bytes], *, name: str, encoding: str = "ASCII") -> Any:
  """Loads a data pickle with :class:`RestrictedUnpickler`.

  Args:
      file: binary file object (already decompressed).
      name: the file's name for error messages.
      encoding: passed to the unpickler (``"latin1"`` for Python 2 pickles).

  Returns:
      The unpickled object.

  Raises:
      ForbiddenGlobalError: the pickle names a forbidden global (a subclass of
          ``pickle.UnpicklingError``).
      CorruptDatasetError: the pickle is truncated or malformed.
  """
  unpickler = RestrictedUnpickler(file, name=name, encoding=encoding)
  try:
    return unpickler.load()
  except ForbiddenGlobalError:
    raise
  except (pickle.UnpicklingError, EOFError, OSError, zlib.error, ValueError) as err:
    raise CorruptDatasetError(
      name, f"truncated or corrupt pickle ({type(err).__name__}: {err})"
    ) from err


def load_gzip_pickle(file: IO[bytes], *, name: str, encoding: str = "ASCII") -> Any:
  """Loads a gzip-compressed data pickle with :class:`RestrictedUnpickler`.

  Args:
      file: binary file object holding gzip data.
      name: the file's name for error messages.
      encoding: passed to the unpickler.

  Returns:
      The unpickled object.
  """
  with gzip.GzipFile(fileobj=file, mode="rb") as gz:
    return load_pickle(gz, name=name, encoding=encoding)


def read_gzip(path: str | os.PathLike[str]) -> bytes:
  """Reads and decompresses a whole ``.gz`` file.

  Raises:
      CorruptDatasetError: naming the file when it is truncated or not gzip.
  """
  try:
    with gzip.open(path, "rb") as f:
      return f.read()
  except (EOFError, OSError, zlib.error) as err:
    raise CorruptDatasetError(path, f"truncated or corrupt gzip file ({err})") from err


def require_file(directory: str | os.PathLike[str], name: str, *, how: str) -> Path:
  """Returns ``directory/name`` if it is a file, else raises :class:`DatasetNotFoundError`."""
  path = Path(directory) / name
  if not path.is_file():
    raise DatasetNotFoundError(f"file {name!r}", directory, how)
  return path


def require_dir(directory: str | os.PathLike[str], *, what: str, how: str) -> Path:
  """Returns ``directory`` if it is a directory, else raises :class:`DatasetNotFoundError`."""
  path = Path(directory)
  if not path.is_dir():
    raise DatasetNotFoundError(what, path, how)
  return path


def open_tar(path: str | os.PathLike[str]) -> tarfile.TarFile:
  """Opens a (compressed) tar archive for reading, with a clear error if it is corrupt."""
  try:
    return tarfile.open(path, "r:*")
  except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
    raise CorruptDatasetError(path, f"not a readable tar archive ({err})") from err


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
  """Extracts a tar archive under ``target`` with tarfile's ``"data"`` filter.

  The filter refuses absolute member names, ``..`` components, links pointing out of
  ``target``, device files, and strips set-uid bits.

  Args:
      archive: path of the ``.tar``/``.tar.gz`` file.
      target: directory to extract into (created if needed).

  Returns:
      ``target`` as a Path.

  Raises:
      CorruptDatasetError: the archive is unreadable or holds an unsafe member.
  """
  target = Path(target)
  target.mkdir(parents=True, exist_ok=True)
  with open_tar(archive) as tar:
    try:
      tar.extractall(target, filter="data")
    except tarfile.FilterError as err:
      raise CorruptDatasetError(archive, f"unsafe archive member refused ({err})") from err
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
      raise CorruptDatasetError(archive, f"truncated or corrupt archive ({err})") from err
  return target


def read_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, *, archive: str) -> bytes:
  """Reads one regular-file member of an open tar archive into memory."""
  try:
    f = tar.extractfile(member)
    if f is None:
      raise CorruptDatasetError(archive, f"member {member.name!r} is not a regular file")
    with f:
      return f.read()
  except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
    raise CorruptDatasetError(archive, f"truncated or corrupt archive ({err})") from err
