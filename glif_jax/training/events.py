"""The TensorBoard scalars of a run: written by process 0, read back without TensorFlow.

Besides the metrics (``train_*``, ``eval_*``), a run logs the mean of each GLIF gate at
every log step, step 0 included, under the tags ``gate/<layer>/<alpha|beta|gamma>``
(`gate_means`); `gate_history` reads them back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2

from glif_jax import neurons
from glif_jax.training import parallel

GATE_PREFIX = "gate/"

_LENGTH = struct.Struct("<Q")
_CRC = 4  # bytes of a masked CRC-32C after the length and after the data


class Writer:
  """TensorBoard scalars, written by process 0 only."""

  def __init__(self, workdir: str | Path):
    self._writer = SummaryWriter(str(workdir)) if jax.process_index() == 0 else None

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if self._writer is not None:
      for tag, value in scalars.items():
        self._writer.add_scalar(tag, value, step)
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def gate_means(
  params: nnx.State, to_host: Callable[[Any], Any] = parallel.host
) -> dict[str, float]:
  """``{"gate/<GLIF layer>/<alpha|beta|gamma>": mean over channels of σ(raw gate)}``.

  The layers are those `glif_jax.neurons.glif_gate_logits` finds; only their gate logits
  go through ``to_host``.
  """
  logits = neurons.glif_gate_logits(nnx.to_pure_dict(params))
  tags = {
    f"{GATE_PREFIX}{layer}/{gate}": raw
    for layer, gates in logits.items()
    for gate, raw in gates.items()
  }
  return {tag: float(np.mean(1 / (1 + np.exp(-raw)))) for tag, raw in to_host(tags).items()}


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


def gate_history(workdir: str | Path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
  """The gate means `gate_means` logged in ``workdir``: ``(steps [S], {layer: {gate:
  values [S, 1]}})`` (a step logged twice, by a resumed run, counts once: its last value);
  empty if none were logged."""
  per_tag = {tag: dict(points) for tag, points in read_scalars(workdir, GATE_PREFIX).items()}
  steps = sorted(set().union(*per_tag.values()))
  gates: dict[str, dict[str, np.ndarray]] = {}
  for tag, values in per_tag.items():
    layer, gate = tag.removeprefix(GATE_PREFIX).rsplit("/", 1)
    gates.setdefault(layer, {})[gate] = np.array([[values[s]] for s in steps])
  return np.array(steps, dtype=np.int64), gates
