"""Reading back the TensorBoard scalars a run wrote, without TensorFlow."""

from __future__ import annotations

import struct
from pathlib import Path

from tensorboardX.proto import event_pb2

_LENGTH = struct.Struct("<Q")
_CRC = 4  # bytes of a masked CRC-32C after the length and after the data


def _records(path: Path):
  """The payloads of a TFRecord file (CRCs not checked)."""
  data = path.read_bytes()
  offset = 0
  while offset + _LENGTH.size <= len(data):
    (length,) = _LENGTH.unpack_from(data, offset)
    start = offset + _LENGTH.size + _CRC
    yield data[start : start + length]
    offset = start + length + _CRC


def read_scalars(workdir: str | Path, prefix: str = "") -> dict[str, list[tuple[int, float]]]:
  """``{tag: [(step, value), ...]}`` of the scalars in ``workdir``'s event files whose tag
  starts with ``prefix``, in the order written (e.g. ``prefix="gate/"``: the GLIF gates
  at every log step, step 0 included)."""
  found: dict[str, list[tuple[int, float]]] = {}
  for path in sorted(Path(workdir).glob("events.out.tfevents.*")):
    for record in _records(path):
      # protobuf makes Event when the module is imported; the module has no stub.
      event = event_pb2.Event.FromString(record)  # pyright: ignore[reportAttributeAccessIssue]
      for value in event.summary.value:
        if value.tag.startswith(prefix):
          found.setdefault(value.tag, []).append((event.step, value.simple_value))
  return found
