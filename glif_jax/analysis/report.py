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


def write_report(
  model: nnx.Module,
  images: jax.Array,
  labels: np.ndarray,
  out: str | Path,
  *,
  title: str,
  checkpoint_step: int,
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
    gate_history: the GLIF gates during training, as `figures.network_figures` takes it.
    summary_json: the run's ``summary.json``, quoted at the end if given.

  Returns:
    The path of ``report.md``.
  """
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  stats = network.network_statistics(model, images)
  paths = figures.network_figures(model, stats, images, out, gate_history=gate_history)
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
    *(f"![{p.stem}]({p.name})" for p in paths),
  ]
  if summary_json is not None:
    lines += ["", "Training summary (`summary.json`):", "", "```json", summary_json.strip(), "```"]
  path = out / REPORT_FILE
  path.write_text("\n".join(lines) + "\n")
  return path
