"""The Markdown report of a trained network: accuracy, statistics, energy and figures.

Needs matplotlib (``pip install glif-jax[analysis]``). ``python -m train.analyze
--workdir DIR`` writes it for a training run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from glif_jax.analysis import figures, network

REPORT_FILE = "report.md"


def accuracy(model: nnx.Module, images: jax.Array, labels: np.ndarray) -> float:
  """The fraction of ``images`` whose readout (mean over T of the logits) is ``labels``."""
  logits = nnx.jit(lambda m, x: m(x))(model, images)
  return float(np.mean(np.argmax(np.asarray(logits).mean(axis=0), -1) == labels))


def gate_movement_text(movement: Mapping[str, Mapping[str, network.GateMovement]]) -> str:
  """Markdown: a sentence naming the largest movement of a GLIF gate from initialisation,
  then a table of every layer's gates (mean before and after, mean and largest ``|Δ|``)."""
  rows = [(layer, gate, m) for layer, gates in movement.items() for gate, m in gates.items()]
  layer, gate, top = max(rows, key=lambda row: row[2].max_abs)
  mean = float(np.mean([m.mean_abs for *_, m in rows]))
  lines = [
    (
      f"GLIF gates moved from initialisation by {mean:.4f} on average over layers, gates and "
      f"channels (|Δ| after the sigmoid); the largest movement, {top.max_abs:.4f}, is a "
      f"channel's {gate} in `{layer}`."
    ),
    "",
    "| layer | gate | mean at init | mean now | mean \\|Δ\\| | largest \\|Δ\\| |",
    "|---|---|---|---|---|---|",
  ]
  lines += [
    f"| `{layer}` | {gate} | {m.before:.4f} | {m.after:.4f} | {m.mean_abs:.4f} | {m.max_abs:.4f} |"
    for layer, gate, m in rows
  ]
  return "\n".join(lines)


def write_report(
  model: nnx.Module,
  images: jax.Array,
  labels: np.ndarray,
  out: str | Path,
  *,
  title: str,
  checkpoint_step: int,
  initial_gates: Mapping[str, Mapping[str, Any]] | None = None,
  gate_history: tuple[Any, Mapping[str, Mapping[str, Any]]] | None = None,
  summary_json: str | None = None,
) -> Path:
  """Writes ``out/report.md`` and its figures for ``model`` (in eval mode) on a batch.

  Args:
    model: the trained network, in eval mode.
    images: a batch as the model takes it (``[B, H, W, C]`` or ``[T, B, ...]``).
    labels: their labels ``[B]``.
    out: the output folder (created if missing).
    title: the report's heading.
    checkpoint_step: the training step of the weights, quoted.
    initial_gates: the GLIF gates at initialisation (`network.glif_gates` of the untrained
      model); the report then says how far each gate moved from them (`gate_movement_text`).
    gate_history: the GLIF gates during training, as `figures.network_figures` takes it.
    summary_json: the run's ``summary.json``, quoted at the end if given.

  Returns:
    The path of ``report.md``.
  """
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  stats = network.network_statistics(model, images)
  paths = figures.network_figures(
    model, stats, images, out, initial_gates=initial_gates, gate_history=gate_history
  )
  gates = network.glif_gates(model)
  movement = network.gate_movement(initial_gates, gates) if initial_gates is not None else {}
  lines = [
    f"# {title}",
    "",
    (
      f"Checkpoint step {checkpoint_step}; {len(labels)} test examples; accuracy on them "
      f"{accuracy(model, images, labels):.4f}."
    ),
    "",
    stats.markdown(),
    "",
    *([gate_movement_text(movement), ""] if movement else []),
    *(f"![{p.stem}]({p.name})" for p in paths),
  ]
  if summary_json is not None:
    lines += ["", "Training summary (`summary.json`):", "", "```json", summary_json.strip(), "```"]
  path = out / REPORT_FILE
  path.write_text("\n".join(lines) + "\n")
  return path
