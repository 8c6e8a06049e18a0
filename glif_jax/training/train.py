"""`train_and_evaluate`: the training loop around the pure steps.

Everything is built once from the config (`experiment.build`): the data, the device
layout (`parallel`), the model and the compiled steps. Then, with the checkpoint manager
and the periodic actions (`actions`)::

  for step in range(first + 1, total_steps + 1):
    state, metrics = train_step(state, next(batches))
    stop(step, state)
    if guard(step) is Decision.ROLL_BACK:  # a step was not finite
      restore the latest checkpoint and go on from there
    for action in periodic:  # log, evaluate, checkpoint, halt
      action(step, state)

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

import collections
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import orbax.checkpoint as ocp
import tqdm

from glif_jax.training import actions, checkpoints, events, input_pipeline
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import read
from glif_jax.training.experiment import Experiment, build
from glif_jax.training.steps import TrainState, guarded_leaf_names, layer_rates

SUMMARY_FILE = "summary.json"
_DEVICE_PREFETCH = 2  # global batches placed on the devices ahead of the step


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
  layout, record = experiment.layout, actions.Record()
  schedule = actions.Schedule(
    experiment.total_steps,
    read(config, "log_every_steps", int),
    experiment.steps_per_epoch,
    read(config, "checkpoint_every_steps", int),
  )
  with contextlib.ExitStack() as stack:
    max_to_keep = read(config, "max_to_keep", int)
    manager = stack.enter_context(checkpoints.checkpoint_manager(workdir, max_to_keep=max_to_keep))
    writer = stack.enter_context(contextlib.closing(events.Writer(workdir)))
    hidden = not config.progress_bar or jax.process_index() > 0
    bar = stack.enter_context(tqdm.tqdm(total=experiment.total_steps, disable=hidden, desc="train"))
    loop = _Loop(
      experiment,
      record,
      stop=actions.Stop(stack.enter_context(actions.StopSignals()), record),
      guard=actions.Guard(config, layout, schedule, record, guarded_leaf_names(experiment.initial)),
      periodic=(
        actions.Log(layout, schedule, record, writer, bar),
        actions.Evaluate(experiment.evaluate, schedule, record, writer),
        actions.Checkpoint(manager, layout, schedule, record),
        actions.Halt(record, str(manager.directory)),
      ),
    )
    state, first = _restore(experiment, manager, record, bar)
    if first:
      actions.say(f"resuming at step {first} from {manager.directory}")
    else:
      writer.write_scalars(0, events.gate_means(state.params, layout.host))
    while (finished := loop.run(state, first)).rolled_back:
      state, first = _restore(experiment, manager, record, bar)
      actions.say(f"rolled back to step {first}")
    if not record.eval:  # nothing was left to train: evaluate the restored state
      record.eval = experiment.evaluate(finished.state)
    final = layout.host(finished.state)
    manager.wait_until_finished()
    summary = _summary(experiment, record, final, checkpoints.best_accuracy(manager), start_time)
  if jax.process_index() == 0:
    Path(workdir, SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
  return final


class _Outcome(NamedTuple):
  state: Any
  rolled_back: bool  # the guard asked to resume from the latest checkpoint


@dataclasses.dataclass(frozen=True)
class _Loop:
  """The train steps, each followed by the stop action, the guard and ``periodic``."""

  experiment: Experiment
  record: actions.Record
  stop: actions.Stop
  guard: actions.Guard
  periodic: Sequence[Callable[[int, Any], None]]

  def run(self, state: Any, first: int) -> _Outcome:
    """Trains from the state after step ``first`` to the last step, or a roll-back."""
    batches = _on_devices(self.experiment, first)
    for step in range(first + 1, self.experiment.total_steps + 1):
      waited = time.perf_counter()
      batch = next(batches)
      self.record.input_wait_s += time.perf_counter() - waited
      state, metrics = self.experiment.train_step(state, batch)
      self.record.add(step, metrics)
      self.stop(step, state)
      if self.guard(step) is actions.Decision.ROLL_BACK:
        return _Outcome(state, rolled_back=True)
      for action in self.periodic:
        action(step, state)
    return _Outcome(state, rolled_back=False)


def _restore(
  experiment: Experiment, manager: ocp.CheckpointManager, record: actions.Record, bar: tqdm.tqdm
) -> tuple[Any, int]:
  """The latest checkpoint (or the initial state) placed for the steps, and its step."""
  layout = experiment.layout
  restored = checkpoints.restore_latest(
    manager, layout.abstract(experiment.initial), steps_per_epoch=experiment.steps_per_epoch
  )
  state, position = restored or (experiment.initial, DataPosition(0, 0))
  first = position.epoch * experiment.steps_per_epoch + position.batch
  record.metrics.clear()
  bar.reset()
  bar.update(first)
  return layout.state(state), first


def _on_devices(experiment: Experiment, first: int) -> Iterator[Any]:
  """The global batches after step ``first`` from this process's rows, placed on the
  devices `_DEVICE_PREFETCH` steps ahead."""
  config, layout = experiment.config, experiment.layout
  batch_size = read(config, "batch_size", int)
  local_batches = input_pipeline.train_stream(
    experiment.splits["train"],
    config,
    DataPosition(*divmod(first, experiment.steps_per_epoch)),
    rows=layout.rows(batch_size),
    num_threads=read(config, "input_threads", int),
  )
  ahead: collections.deque = collections.deque()
  for local in local_batches:
    ahead.append(layout.batch(local, batch_size))
    if len(ahead) > _DEVICE_PREFETCH:
      yield ahead.popleft()
  yield from ahead


def _summary(
  experiment: Experiment,
  record: actions.Record,
  final: TrainState,
  best_accuracy: float | None,
  start_time: float,
) -> dict[str, Any]:
  """The run's ``summary.json``."""
  return {
    "test_accuracy": record.eval["accuracy"],
    "test_loss": record.eval["loss"],
    "best_accuracy": best_accuracy,
    "firing_rate": layer_rates(record.eval),
    "steps": int(final.step),
    "epochs": int(final.step) / experiment.steps_per_epoch,
    "nonfinite_steps": record.nonfinite,
    "input_wait_s": record.input_wait_s,
    "wall_time_s": time.time() - start_time,
  }
