"""Evaluates a checkpoint of the GLIF authors' PyTorch code on a config's test split.

Usage::

  python -m train.evaluate --config configs/cifar10_resnet19_t4.py \\
      --authors-checkpoint resCifar19-CIFAR10-step4-CW.pth.tar \\
      [--workdir runs/authors_resnet19_t4] [--config.manual_dir=...]

The config names the network, T, the batch norm (``--config.norm``, e.g. ``tdbn`` for a
checkpoint of the authors' ImageNet code as written, ``bn`` for one of their multi-GPU
CIFAR runs) and the data (read from the user's files through `glif_jax.data`); the
checkpoint is read without PyTorch and without running anything from the file
(`glif_jax.models.load_authors_checkpoint`, which names the norm to build on a mismatch).
Prints the test accuracy and loss, the mean firing rate of every neuron layer over the test
split, and the energy estimate (SOPs, SNN against ANN energy) on the first
``--energy_examples`` test examples.

``--workdir`` writes what a training run leaves: ``config.json``, ``summary.json`` (the
training summary's keys, ``steps`` 0, plus ``authors_checkpoint`` and ``energy``) and an
orbax checkpoint at step 0 holding the authors' weights, so ``python -m train.analyze
--workdir DIR`` reports on it and ``python -m train.main`` with the same config fine-tunes
from it. Only a new workdir is written: one holding a run's checkpoints or ``summary.json``
is refused. Weights holding NaN/inf are refused (`glif_jax.models.NonFiniteWeightsError`);
``--allow-nonfinite`` evaluates them, but never with ``--workdir``. A missing or bad
checkpoint, config or data ends with one line and status 2 (``train/_cli.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx
from ml_collections import config_flags

from glif_jax import analysis, training
from glif_jax.models import NonFiniteWeightsError, load_authors_checkpoint
from glif_jax.training import checkpoints, input_pipeline
from glif_jax.training.actions import nonfinite_leaves
from glif_jax.training.steps import layer_rates
from glif_jax.training.train import SUMMARY_FILE
from train import _cli

FLAGS = flags.FLAGS


def _in_network_order(rates: dict[str, float], stats: analysis.NetworkStats) -> dict[str, float]:
  """``{layer: rate}`` in the order of the layers of ``stats``."""
  position = {k.replace("/", "."): i for i, k in enumerate(stats.firing_rates)}
  return dict(sorted(rates.items(), key=lambda item: position.get(item[0], len(position))))


def _energy(stats: analysis.NetworkStats) -> dict[str, float]:
  return {
    "examples": len(stats.spike_counts),
    "spikes_per_sample": float(np.mean(stats.spike_counts)),
    "sops_per_sample": float(stats.sops),
    "snn_energy_uj": stats.snn_energy_pj / 1e6,
    "ann_energy_uj": stats.ann_energy_pj / 1e6,
    "energy_ratio": float(stats.energy_ratio),
  }


def evaluate_authors_checkpoint(
  config: ml_collections.ConfigDict,
  checkpoint: str | Path,
  workdir: str | Path | None = None,
  *,
  energy_examples: int = 64,
  allow_nonfinite: bool = False,
) -> dict[str, Any]:
  """Loads the authors' ``checkpoint`` into ``config``'s model and evaluates it.

  Args:
    config: a training config (e.g. ``configs/cifar10_resnet19_t4.py``'s).
    checkpoint: the authors' ``.pth``/``.pth.tar`` file.
    workdir: if given, written like a training run's (see the module docstring).
    energy_examples: the energy estimate runs on at most this many examples of the first
      test batch.
    allow_nonfinite: evaluate weights holding NaN/inf too (never written to ``workdir``).

  Returns:
    The summary: ``test_accuracy``, ``test_loss``, ``firing_rate`` ``{layer: rate}`` over
    the test split, ``energy`` on the first test examples, and the training summary's other
    keys.

  Raises:
    NonFiniteWeightsError: the checkpoint holds NaN/inf values (unless
      ``allow_nonfinite``), or it does and a ``workdir`` is given.
    ConfigError: ``workdir`` holds another run's checkpoints or ``summary.json`` (it is
      never overwritten), or another process uses it.
  """
  if workdir:  # an empty one is refused by the build
    _refuse_used(Path(workdir))
  try:
    return _evaluate(config, checkpoint, workdir, energy_examples, allow_nonfinite)
  finally:
    if workdir is not None:
      checkpoints.unlock_workdir(workdir)


def _refuse_used(workdir: Path) -> None:
  """Raises ConfigError if ``workdir`` holds a run's checkpoints or summary: never overwritten."""
  steps = checkpoints.saved_steps(workdir)
  found = [f"checkpoints of steps {steps}"] if steps else []
  found += [SUMMARY_FILE] if (workdir / SUMMARY_FILE).exists() else []
  if found:
    raise training.ConfigError(
      f"workdir {str(workdir)!r} holds another run ({', '.join(found)}); train.evaluate "
      "writes only into a new workdir: give another --workdir"
    )


def _evaluate(
  config: ml_collections.ConfigDict,
  checkpoint: str | Path,
  workdir: str | Path | None,
  energy_examples: int,
  allow_nonfinite: bool,
) -> dict[str, Any]:
  """`evaluate_authors_checkpoint`, once ``workdir`` (if any) is known to be new."""
  start = time.time()
  entries: dict[str, Any] = {}

  def load_weights(model: nnx.Module) -> None:
    entries.update(load_authors_checkpoint(model, checkpoint, allow_nonfinite=allow_nonfinite))

  experiment = training.build(config, workdir, load_weights=load_weights)
  initial = jax.device_get(experiment.initial)
  if workdir is not None:
    _refuse_nonfinite(initial, checkpoint)
  metrics = experiment.evaluate(experiment.layout.state(experiment.initial))
  experiment.model.eval()
  images, _ = input_pipeline.test_examples(
    experiment.splits["test"], experiment.config, energy_examples
  )
  stats = analysis.network_statistics(experiment.model, jnp.asarray(images))
  summary = {
    "test_accuracy": metrics.pop("accuracy"),
    "test_loss": metrics.pop("loss"),
    "best_accuracy": None,
    "firing_rate": _in_network_order(layer_rates(metrics), stats),
    "steps": 0,
    "epochs": 0.0,
    "nonfinite_steps": 0,
    "input_wait_s": 0.0,  # no training step waited
    "wall_time_s": time.time() - start,
    "authors_checkpoint": str(Path(checkpoint).absolute()),
    "authors_entries": {k: v for k, v in entries.items() if isinstance(v, (int, float, str))},
    "energy": _energy(stats),
  }
  if workdir is not None:
    _write_workdir(Path(workdir), experiment.config.max_to_keep, initial, summary)
  return summary


def _refuse_nonfinite(state: training.TrainState, checkpoint: str | Path) -> None:
  """Raises `NonFiniteWeightsError` if ``state`` holds NaN/inf: it is never saved."""
  if bad := nonfinite_leaves(state):
    raise NonFiniteWeightsError(
      f"{checkpoint} holds non-finite values ({', '.join(bad[:5])}); no checkpoint of "
      "it is written (a run fine-tuned from it could not learn): leave out --workdir"
    )


def _write_workdir(
  workdir: Path, max_to_keep: int, state: training.TrainState, summary: dict
) -> None:
  """A step-0 checkpoint of ``state`` and ``summary.json``, as `train.main`.

  ``config.json`` was written by `checkpoints.guard_workdir` before the evaluation.
  """
  with checkpoints.checkpoint_manager(workdir, max_to_keep=max_to_keep) as manager:
    checkpoints.save(
      manager,
      jax.device_get(state),
      checkpoints.DataPosition(0, 0),
      eval_accuracy=summary["test_accuracy"],
    )
    manager.wait_until_finished()
  (workdir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def report(summary: dict[str, Any]) -> str:
  """The summary as text: accuracy, firing rate per layer, energy."""
  energy = summary["energy"]
  entries = ", ".join(f"{k} {v}" for k, v in summary["authors_entries"].items())
  lines = [
    f"authors' checkpoint: {summary['authors_checkpoint']}" + (f" ({entries})" if entries else ""),
    f"test accuracy {summary['test_accuracy']:.4f}, test loss {summary['test_loss']:.4f}",
    "firing rate per neuron layer (test split):",
    *(f"  {layer}: {rate:.4f}" for layer, rate in summary["firing_rate"].items()),
    (
      f"energy on {energy['examples']} test examples (per sample): "
      f"{energy['spikes_per_sample']:.1f} spikes, {energy['sops_per_sample']:.4g} SOPs, "
      f"SNN {energy['snn_energy_uj']:.4g} µJ, ANN {energy['ann_energy_uj']:.4g} µJ "
      f"(ANN/SNN {energy['energy_ratio']:.2f}×)"
    ),
  ]
  return "\n".join(lines)


def _define_flags() -> None:
  """The command line's flags (defined only when run, so that importing this module for its
  functions leaves absl's global flags alone)."""
  config_flags.DEFINE_config_file("config", None, "Config of the paper run.", lock_config=True)
  flags.DEFINE_string("authors-checkpoint", None, "A .pth/.pth.tar file of the GLIF authors.")
  flags.DEFINE_string("workdir", None, "Write config.json, summary.json and a checkpoint here.")
  flags.DEFINE_integer("energy_examples", 64, "Test examples of the energy estimate (at most).")
  flags.DEFINE_bool(
    "allow-nonfinite", False, "Evaluate weights holding NaN/inf too (no checkpoint is written)."
  )
  flags.mark_flags_as_required(["config", "authors-checkpoint"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  summary = evaluate_authors_checkpoint(
    FLAGS.config,
    FLAGS["authors-checkpoint"].value,
    FLAGS.workdir,
    energy_examples=FLAGS.energy_examples,
    allow_nonfinite=FLAGS["allow-nonfinite"].value,
  )
  print(report(summary))


if __name__ == "__main__":
  _define_flags()
  _cli.run(main)
