"""Safe readers: a restricted unpickler, bounded reads, safe tar extraction, file look-ups.

The MNIST ``.pkl.gz`` and the CIFAR python batches are pickles. A pickle can name any
importable callable and run it while loading, so these files are read with
:class:`RestrictedUnpickler`, which admits only the globals NumPy array reconstruction
needs. Containers and scalars (tuple, list, dict, bytes, str, int, float) are built by
the pickle opcodes themselves and need no global.

Compressed members are never inflated past the most their format allows: a member whose
header declares more is refused before it is read, and every read stops one byte past the
bound (:func:`read_bounded`), so a header that lies inflates no more.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
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
  except (ForbiddenGlobalError, CorruptDatasetError):
    raise
  except (pickle.UnpicklingError, EOFError, OSError, zlib.error, ValueError) as err:
    raise CorruptDatasetError(
      name, f"truncated or corrupt pickle ({type(err).__name__}: {err})"
    ) from err


def _too_large(source: str | os.PathLike[str], what: str, limit: int) -> CorruptDatasetError:
  return CorruptDatasetError(source, f"{what} holds more than {limit} bytes, the most it may")


def read_bounded(
  file: IO[bytes] | gzip.GzipFile, limit: int, *, source: str | os.PathLike[str], what: str
) -> bytes:
  """Reads ``file`` to its end, reading at most ``limit + 1`` bytes.

  Raises:
      CorruptDatasetError: naming ``source``, ``what`` and ``limit`` if there is more.
  """
  data = file.read(limit + 1)
  if len(data) > limit:
    raise _too_large(source, what, limit)
  return data


class _BoundedReader:
  """``file`` for an unpickler, refusing to deliver more than ``limit`` bytes; a read that
  asks for more than is left is refused unread (the pickle would be too large or truncated)."""

  def __init__(
    self, file: IO[bytes] | gzip.GzipFile, limit: int, *, source: str, what: str
  ) -> None:
    self._file, self._left = file, limit
    self._error = _too_large(source, what, limit)

  def _room(self, size: int | None) -> int:
    return self._left + 1 if size is None or size < 0 else min(size, self._left + 1)

  def _take(self, data: bytes) -> bytes:
    self._left -= len(data)
    if self._left < 0:
      raise self._error
    return data

  def read(self, size: int | None = -1) -> bytes:
    if size is not None and size > self._left:
      raise self._error
    return self._take(self._file.read(self._room(size)))

  def readline(self, size: int | None = -1) -> bytes:
    return self._take(self._file.readline(self._room(size)))


def load_gzip_pickle(file: IO[bytes], *, name: str, limit: int, encoding: str = "ASCII") -> Any:
  """Loads a gzip-compressed data pickle with :class:`RestrictedUnpickler`.

  Args:
      file: binary file object holding gzip data.
      name: the file's name for error messages.
      limit: the most bytes the decompressed pickle may hold; more is refused unread.
      encoding: passed to the unpickler.

  Returns:
      The unpickled object.
  """
  with gzip.GzipFile(fileobj=file, mode="rb") as gz:
    bounded = _BoundedReader(gz, limit, source=name, what="the decompressed pickle")
    return load_pickle(bounded, name=name, encoding=encoding)  # type: ignore[arg-type]


@contextlib.contextmanager
def open_gzip(path: str | os.PathLike[str]) -> Iterator[gzip.GzipFile]:
  """Opens a ``.gz`` file for reading (read it with a bound: :func:`read_bounded`).

  Raises:
      CorruptDatasetError: naming the file when it is truncated or not gzip.
  """
  try:
    with gzip.open(path, "rb") as f:
      yield f
  except (EOFError, OSError, zlib.error) as err:
    raise CorruptDatasetError(path, f"truncated or corrupt gzip file ({err})") from err


@contextlib.contextmanager
def open_zip(archive: Path) -> Iterator[zipfile.ZipFile]:
  """The zip archive, with :class:`CorruptDatasetError` naming it if it is unreadable."""
  try:
    with zipfile.ZipFile(archive) as z:
      yield z
  except (zipfile.BadZipFile, EOFError, OSError) as err:
    raise CorruptDatasetError(archive, f"truncated or corrupt zip file ({err})") from err


def read_zip_member(
  archive: zipfile.ZipFile, member: str, *, limit: int, source: str | os.PathLike[str]
) -> bytes:
  """Member ``member`` of an open zip archive, refused unread if it declares over ``limit``."""
  size = archive.getinfo(member).file_size
  what = f"member {member!r}"
  if size > limit:
    raise _too_large(source, what, limit)
  with archive.open(member) as f:
    return read_bounded(f, limit, source=source, what=what)


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


def safe_extract(
  archive: str | os.PathLike[str],
  target: str | os.PathLike[str],
  *,
  max_member_bytes: int | None = None,
) -> Path:
  """Extracts a tar archive under ``target`` with tarfile's ``"data"`` filter.

  The filter refuses absolute member names, ``..`` components, links pointing out of
  ``target``, device files, and strips set-uid bits.

  Args:
      archive: path of the ``.tar``/``.tar.gz`` file.
      target: directory to extract into (created if needed).
      max_member_bytes: refuse the archive, before extracting anything, if a member is
          larger (None: no bound).

  Returns:
      ``target`` as a Path.

  Raises:
      CorruptDatasetError: the archive is unreadable or holds an unsafe member.
  """
  target = Path(target)
  target.mkdir(parents=True, exist_ok=True)
  with open_tar(archive) as tar:
    try:
      members = tar.getmembers()
      if max_member_bytes is not None and (
        large := [m for m in members if m.size > max_member_bytes]
      ):
        raise _too_large(archive, f"member {large[0].name!r}", max_member_bytes)
      tar.extractall(target, filter="data")
    except tarfile.FilterError as err:
      raise CorruptDatasetError(archive, f"unsafe archive member refused ({err})") from err
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
      raise CorruptDatasetError(archive, f"truncated or corrupt archive ({err})") from err
  return target


def read_tar_member(
  tar: tarfile.TarFile, member: tarfile.TarInfo, *, archive: str, limit: int
) -> bytes:
  """Reads one regular-file member of an open tar archive into memory.

  Raises:
      CorruptDatasetError: the member is not a regular file, is larger than ``limit``
          bytes (refused before it is read), or the archive is corrupt.
  """
  what = f"member {member.name!r}"
  if member.size > limit:
    raise _too_large(archive, what, limit)
  try:
    f = tar.extractfile(member)
    if f is None:
      raise CorruptDatasetError(archive, f"{what} is not a regular file")
    with f:
      return read_bounded(f, limit, source=archive, what=what)
  except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
    raise CorruptDatasetError(archive, f"truncated or corrupt archive ({err})") from err
