"""`train_and_evaluate`: the training loop around the pure steps.

Everything is built once from the config (`experiment.build`): the data, the device
layout (`parallel`), the model and the compiled steps. `_loop` then reads top to bottom::

  for step in range(first + 1, total_steps + 1):
    state, metrics = train_step(state, next(batches))
    if a log or save step, or a stop signal:   # guard: were the steps finite?
      skip them, roll back to the latest checkpoint, or abort (config.nonfinite)
    if schedule.log(step): log the train metrics and the GLIF gates
    if schedule.eval(step): evaluation = evaluate(state)
    if schedule.save(step) or stopping: save(state, eval_accuracy from evaluation)
    if stopping: raise

Multi-process runs (``config.distributed``) run the same loop in every process, each on
its rows of every global batch. Process 0 alone writes TensorBoard events and
``summary.json`` and shows the progress bar; orbax writes each checkpointed array once.

Reliability: a step with non-finite values is never applied (`train_step`), and the guard
then skips, rolls back or aborts (``config.nonfinite``). SIGTERM and SIGINT (Ctrl-C) to
any process make every process save a checkpoint at the same step and stop
(`TrainingInterrupted`, `KeyboardInterrupt`); a rerun with the same workdir resumes
exactly, on the same or another number of processes and devices.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import orbax.checkpoint as ocp
import tqdm

from glif_jax.training import actions, checkpoints, events
from glif_jax.training.experiment import Experiment, build
from glif_jax.training.steps import TrainState, layer_rates

SUMMARY_FILE = "summary.json"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> TrainState:
  """Trains ``config``'s model, evaluating each epoch; resumes from ``workdir`` if it can.

  Writes to ``workdir`` (process 0): ``config.json``, TensorBoard scalars (``train_*``,
  ``eval_*``, ``gate/<layer>/<gate>`` from step 0), orbax checkpoints under
  ``checkpoints/`` and, at the end, ``summary.json`` (test and best accuracy, mean
  firing rate per layer, non-finite steps, input wait, wall time), which is also printed.

  Args:
    config: the training config (keys as in `glif_jax.training.config.default_config`).
    workdir: the run's directory (locked while the run uses it: `checkpoints.lock_workdir`).

  Returns:
    The final `TrainState` (host arrays).

  Raises:
    ConfigError: a bad config (raised before anything is built or compiled), processes
      with different configs, or a workdir in use by another process, of a run with
      another config, or unusable.
    NonFiniteError: non-finite values, as ``config.nonfinite`` says.
    TrainingInterrupted: SIGTERM; a checkpoint of the current step was saved first.
    KeyboardInterrupt: SIGINT (Ctrl-C); a checkpoint of the current step was saved first.
    checkpoints.CheckpointMismatchError: the workdir's checkpoints hold another model.
    checkpoints.CorruptCheckpointError: the workdir has checkpoints but none is intact.
  """
  start_time = time.time()
  try:
    return _train_and_evaluate(config, workdir, start_time)
  finally:
    checkpoints.unlock_workdir(workdir)


def _train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str | Path, start_time: float
) -> TrainState:
  """`train_and_evaluate` in the workdir this process holds."""
  experiment = build(config, workdir)
  checked = experiment.config
  with contextlib.ExitStack() as stack:
    manager = stack.enter_context(
      checkpoints.checkpoint_manager(workdir, max_to_keep=checked.max_to_keep)
    )
    writer = stack.enter_context(contextlib.closing(events.Writer(workdir)))
    hidden = not checked.progress_bar or jax.process_index() > 0
    bar = stack.enter_context(tqdm.tqdm(total=experiment.total_steps, disable=hidden, desc="train"))
    signals = stack.enter_context(actions.StopSignals())
    finished = _loop(experiment, manager, writer, bar, signals)
    final = experiment.layout.host(finished.state)
    manager.wait_until_finished()
    summary = _summary(experiment, finished, final, checkpoints.best_accuracy(manager), start_time)
  if jax.process_index() == 0:
    Path(workdir, SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
  return final


class _Finished(NamedTuple):
  state: Any  # after the last step, as the steps take it
  evaluation: dict[str, float]  # of ``state``
  nonfinite_steps: int  # steps not applied in this run
  input_wait_s: float  # time the loop waited for its next batch


def _loop(
  experiment: Experiment,
  manager: ocp.CheckpointManager,
  writer: events.Writer,
  bar: tqdm.tqdm,
  signals: actions.StopSignals,
) -> _Finished:
  """Trains from the latest checkpoint (or step 0) to the last step."""
  config, layout, total = experiment.config, experiment.layout, experiment.total_steps
  schedule = actions.Schedule(
    total, config.log_every_steps, experiment.steps_per_epoch, config.checkpoint_every_steps
  )
  state, step = experiment.restore(manager)
  bar.update(step)
  if step:
    actions.say(f"resuming at step {step} from {manager.directory}")
  else:
    actions.log_gates(0, state, layout, writer)
  batches, metrics, flags, evaluation = experiment.train_batches(step), [], [], {}
  skipped, replayed, input_wait_s = 0, set(), 0.0
  while step < total:
    step, waited = step + 1, time.perf_counter()
    batch = next(batches)
    input_wait_s += time.perf_counter() - waited
    state, step_metrics = experiment.train_step(state, batch)
    flags.append((step, actions.guard_flags(step_metrics)))
    metrics.append(step_metrics)
    stopping = actions.agreed_stop(signals)
    if schedule.log(step) or schedule.save(step) or stopping:
      found = actions.nonfinite_steps(flags, layout, experiment.guarded_names)
      flags.clear()
      skipped += len(found)
      mode, limit = config.nonfinite, config.max_nonfinite_steps
      decision = actions.guard(found, mode=mode, limit=limit, skipped=skipped, replayed=replayed)
      if decision is actions.Decision.ROLL_BACK:
        replayed.update(s for s, _ in found)
        state, step = experiment.restore(manager)
        batches, metrics = experiment.train_batches(step), []
        bar.reset(total=total)
        bar.update(step)
        actions.say(f"rolled back to step {step}")
        continue
    bar.update()
    if schedule.log(step):
      actions.log_train(step, metrics, state, layout, writer, bar)
      metrics.clear()
    if schedule.eval(step):
      evaluation = experiment.evaluate(state)
      actions.log_eval(step, evaluation, writer)
    if schedule.save(step) or stopping:
      accuracy = evaluation["accuracy"] if schedule.eval(step) else None
      actions.save(manager, layout, state, step, schedule.steps_per_epoch, eval_accuracy=accuracy)
    if stopping:
      actions.halt(stopping, step, str(manager.directory))
  # A run restored at its last step trained nothing: evaluate the restored state.
  evaluation = evaluation or experiment.evaluate(state)
  return _Finished(state, evaluation, skipped, input_wait_s)


def _summary(
  experiment: Experiment,
  finished: _Finished,
  final: TrainState,
  best_accuracy: float | None,
  start_time: float,
) -> dict[str, Any]:
  """The run's ``summary.json``."""
  return {
    "test_accuracy": finished.evaluation["accuracy"],
    "test_loss": finished.evaluation["loss"],
    "best_accuracy": best_accuracy,
    "firing_rate": layer_rates(finished.evaluation),
    "steps": int(final.step),
    "epochs": int(final.step) / experiment.steps_per_epoch,
    "nonfinite_steps": finished.nonfinite_steps,
    "input_wait_s": finished.input_wait_s,
    "wall_time_s": time.time() - start_time,
  }
