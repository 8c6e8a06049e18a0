"""Analysis report of a trained run, and the README's neuron-dynamics figures.

Usage::

  python -m train.analyze --workdir runs/mnist_glif [--batch_size=64] [--out DIR]
  python -m train.analyze --docs docs

``--workdir`` rebuilds the model from the run's ``config.json``, restores its latest
checkpoint (refused unless it matches its digest and its step, as a resume checks), runs one batch of test data and writes to ``DIR`` (default
``<workdir>/analysis``) ``report.md`` and its figures (`glif_jax.analysis.report`).
``--docs`` writes `glif_jax.analysis.figures.dynamics_figures`, made from the neuron
equations alone.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from flax import nnx

from glif_jax import data
from glif_jax.analysis import figures, network
from glif_jax.analysis.report import write_report
from glif_jax.training import (
  checkpoints,
  create_model,
  create_train_state,
  gate_history,
  input_pipeline,
  make_tx,
)
from glif_jax.training.checkpoints import CHECKPOINT_DIR
from glif_jax.training.config import Config, recorded_config
from glif_jax.training.train import SUMMARY_FILE
from train import _cli

FLAGS = flags.FLAGS


def _gate_history(workdir: Path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
  """The GLIF gates during training: the logged means at every log step (step 0 on), or,
  for a run that logged none, the gates of each kept checkpoint."""
  steps, gates = gate_history(workdir)
  return (steps, gates) if len(steps) else network.gate_evolution(workdir / CHECKPOINT_DIR)


def _restored_model(
  workdir: Path, config: Config, splits: dict[str, data.RecordSource]
) -> tuple[nnx.Module, int]:
  """The run's model holding its latest checkpoint, verified as a resume verifies it (fits
  the model, matches its digest and its step), and that step."""
  model = create_model(config, splits["train"].info)
  per_epoch = input_pipeline.steps_per_epoch(splits["train"], config)
  tx = make_tx(config, per_epoch, input_pipeline.total_steps(config, per_epoch))
  _, initial = create_train_state(model, tx)
  with checkpoints.checkpoint_manager(workdir, max_to_keep=1, read_only=True) as manager:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoints in {str(manager.directory)!r}")
    state, _ = checkpoints.restore_step(manager, step, initial, steps_per_epoch=per_epoch)
  nnx.update(model, state.params, state.rest)
  return model, step


def report(workdir: Path, out: Path, batch_size: int) -> Path:
  """Writes ``report.md`` and figures for the run in ``workdir`` to ``out``."""
  config = recorded_config(checkpoints.read_config(workdir))
  splits, _ = input_pipeline.load(config)
  images, labels = input_pipeline.test_examples(splits["test"], config, batch_size)
  model, step = _restored_model(workdir, config, splits)
  model.eval()
  summary = workdir / SUMMARY_FILE
  return write_report(
    model,
    jnp.asarray(images),
    labels,
    out,
    title=f"Analysis of `{workdir}`",
    checkpoint_step=step,
    initial_gates=network.glif_gates(create_model(config, splits["train"].info)),  # at init
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
