"""A writer of PyTorch's zip checkpoint format, with stand-in `torch` modules (no PyTorch
needed): the checkpoints that the reader's and the authors' mapping's tests load."""

import collections
import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np


class Storage:
  """A flat array pickled as PyTorch pickles a storage: a persistent id."""

  def __init__(self, key: str, data: np.ndarray, type_name: str):
    self.key, self.data, self.type_name = key, data, type_name


class Tensor:
  """Pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

  def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple):
    self.args = (storage, offset, size, stride, False, collections.OrderedDict())

  def __reduce__(self):
    return sys.modules["torch._utils"]._rebuild_tensor_v2, self.args


def fake_torch(monkeypatch) -> None:
  torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):
    raise AssertionError("never called: only pickled")

  _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = (
    "torch._utils",
    "_rebuild_tensor_v2",
  )
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  for name in ("FloatStorage", "DoubleStorage", "LongStorage", "BFloat16Storage"):
    setattr(torch, name, type(name, (), {"__module__": "torch"}))
  torch._utils = utils
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)


def write_torch_zip(path: Path, obj, *, byteorder="little", extra=None, omit=()) -> None:
  """Writes ``obj`` (with `Tensor`s) as ``torch.save`` lays out its zip archive.

  ``extra``: more entries {name: bytes}; ``omit``: storage keys not to write.
  """
  prefix = "archive"
  storages: dict[str, Storage] = {}

  class Pickler(pickle.Pickler):
    def persistent_id(self, o):
      if isinstance(o, Storage):
        storages[o.key] = o
        storage_type = getattr(sys.modules["torch"], o.type_name)
        return ("storage", storage_type, o.key, "cpu", o.data.size)
      return None

  buffer = io.BytesIO()
  Pickler(buffer, protocol=2).dump(obj)
  with zipfile.ZipFile(path, "w") as z:
    z.writestr(f"{prefix}/data.pkl", buffer.getvalue())
    z.writestr(f"{prefix}/byteorder", byteorder)
    for key, s in storages.items():
      if key in omit:
        continue
      order = "<" if byteorder == "little" else ">"
      z.writestr(f"{prefix}/data/{key}", s.data.astype(s.data.dtype.newbyteorder(order)).tobytes())
    z.writestr(f"{prefix}/version", "3\n")
    for name, data in (extra or {}).items():
      z.writestr(name, data)
