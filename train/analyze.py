"""Analysis report of a trained run, and the README's neuron-dynamics figures.

Usage::

  python -m train.analyze --workdir runs/mnist_glif [--batch_size=64] [--out DIR]
  python -m train.analyze --docs docs

``--workdir`` rebuilds the model from the run's ``config.json``, restores its latest
checkpoint, runs one batch of test data and writes to ``DIR`` (default
``<workdir>/analysis``) ``report.md`` and its figures (`glif_jax.analysis.report`).
``--docs`` writes `glif_jax.analysis.figures.dynamics_figures`, made from the neuron
equations alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging

from glif_jax.analysis import figures, network
from glif_jax.analysis.report import write_report
from glif_jax.training import create_model, gate_history, input_pipeline
from glif_jax.training.checkpoints import CHECKPOINT_DIR, CONFIG_FILE
from glif_jax.training.train import SUMMARY_FILE
from train import _cli

FLAGS = flags.FLAGS


def _gate_history(workdir: Path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
  """The GLIF gates during training: the logged means at every log step (step 0 on), or,
  for a run that logged none, the gates of each kept checkpoint."""
  steps, gates = gate_history(workdir)
  return (steps, gates) if len(steps) else network.gate_evolution(workdir / CHECKPOINT_DIR)


def report(workdir: Path, out: Path, batch_size: int) -> Path:
  """Writes ``report.md`` and figures for the run in ``workdir`` to ``out``."""
  config = ml_collections.ConfigDict(json.loads((workdir / CONFIG_FILE).read_text()))
  splits, info = input_pipeline.load(config)
  images, labels = input_pipeline.test_examples(splits["test"], config, batch_size)
  model = create_model(config, info)
  step = network.restore_model(model, workdir / CHECKPOINT_DIR)
  model.eval()
  summary = workdir / SUMMARY_FILE
  return write_report(
    model,
    jnp.asarray(images),
    labels,
    out,
    title=f"Analysis of `{workdir}`",
    checkpoint_step=step,
    gate_history=_gate_history(workdir),
    summary_json=summary.read_text() if summary.exists() else None,
  )


def _define_flags() -> None:
  """The command line's flags (defined only when run, so that importing this module for its
  functions leaves absl's global flags alone)."""
  flags.DEFINE_string("workdir", None, "A train.main workdir to analyse.")
  flags.DEFINE_string("out", None, "Output folder (default: <workdir>/analysis).")
  flags.DEFINE_integer("batch_size", 64, "Test examples to run.")
  flags.DEFINE_string("docs", None, "Write the README's dynamics figures to this folder.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.workdir is None and FLAGS.docs is None:
    raise app.UsageError("give --workdir (a run to analyse) and/or --docs (a folder)")
  logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  if FLAGS.docs is not None:
    for path in figures.dynamics_figures(Path(FLAGS.docs)):
      print(f"wrote {path}")
  if FLAGS.workdir is not None:
    workdir = Path(FLAGS.workdir)
    print(f"wrote {report(workdir, Path(FLAGS.out or workdir / 'analysis'), FLAGS.batch_size)}")


if __name__ == "__main__":
  _define_flags()
  _cli.run(main)
