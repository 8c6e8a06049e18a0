"""Analysis report of a trained run, and the README's neuron-dynamics figures.

Usage::

  python -m train.analyze --workdir runs/mnist_glif [--batch_size=64] [--out DIR]
  python -m train.analyze --docs docs

``--workdir`` rebuilds the model from the run's ``config.json``, restores its latest
checkpoint, runs one batch of test data and writes to ``DIR`` (default
``<workdir>/analysis``) ``report.md`` (`glif_jax.analysis.network.NetworkStats.markdown`)
and the figures of `glif_jax.analysis.figures.network_figures`. ``--docs`` writes
`glif_jax.analysis.figures.dynamics_figures`, made from the neuron equations alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx

from glif_jax.analysis import figures, network
from glif_jax.training import GATE_PREFIX, create_model, input_pipeline, read_scalars
from glif_jax.training.checkpoints import CHECKPOINT_DIR, CONFIG_FILE
from train import _cli

FLAGS = flags.FLAGS


def _gate_history(workdir: Path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
  """The GLIF gates during training: the logged means at every log step (step 0 on), or,
  for a run that logged none, the gates of each kept checkpoint."""
  logged = read_scalars(workdir, GATE_PREFIX)
  if not logged:
    return network.gate_evolution(workdir / CHECKPOINT_DIR)
  per_tag = {tag: dict(points) for tag, points in logged.items()}  # a resumed step: last
  steps = sorted(set().union(*per_tag.values()))
  gates: dict[str, dict[str, np.ndarray]] = {}
  for tag, values in per_tag.items():
    layer, gate = tag.removeprefix(GATE_PREFIX).rsplit("/", 1)
    gates.setdefault(layer, {})[gate] = np.array([[values[s]] for s in steps])
  return np.array(steps), gates


def report(workdir: Path, out: Path, batch_size: int) -> Path:
  """Writes ``report.md`` and figures for the run in ``workdir`` to ``out``."""
  config = ml_collections.ConfigDict(json.loads((workdir / CONFIG_FILE).read_text()))
  splits, info = input_pipeline.load(config)
  images, labels = input_pipeline.test_examples(splits["test"], config, batch_size)
  images = jnp.asarray(images)
  model = create_model(config, info, bn_axis_name=None)
  step = network.restore_model(model, workdir / CHECKPOINT_DIR)
  model.eval()
  stats = network.network_statistics(model, images)
  logits = nnx.jit(lambda m, x: m(x))(model, images)
  accuracy = float(np.mean(np.argmax(np.asarray(logits).mean(axis=0), -1) == labels))
  paths = figures.network_figures(model, stats, images, out, gate_history=_gate_history(workdir))
  lines = [
    f"# Analysis of `{workdir}`",
    "",
    f"Checkpoint step {step}; {len(labels)} test examples; accuracy on them {accuracy:.4f}.",
    "",
    stats.markdown(),
    "",
    *(f"![{p.stem}]({p.name})" for p in paths),
  ]
  summary = workdir / "summary.json"
  if summary.exists():
    lines += [
      "",
      "Training summary (`summary.json`):",
      "",
      "```json",
      summary.read_text().strip(),
      "```",
    ]
  path = out / "report.md"
  path.write_text("\n".join(lines) + "\n")
  return path


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
