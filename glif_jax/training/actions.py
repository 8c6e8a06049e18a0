"""The periodic actions of the training loop: stop, guard, log, evaluate, checkpoint, halt.

Each action is a callable ``action(step, state)`` that the loop runs after every train
step, in this order; it asks the `Schedule` whether its time has come. The `Guard`
(``guard(step)``) returns a `Decision` the loop acts on: go on, or roll back. They share a
`Record` of what the loop accumulates: the steps' metrics and NaN/inf flags (left on the
devices until an action reads them), the latest evaluation and the agreed stop signal.
"""

from __future__ import annotations

import dataclasses
import enum
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, final

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm
from absl import logging

from glif_jax.training import checkpoints, events, parallel
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import read
from glif_jax.training.steps import FINITE, FINITE_LEAVES, TrainState, leaf_names, listed

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class NonFiniteError(FloatingPointError):
  """Training stopped on non-finite values (``config.nonfinite``)."""


class TrainingInterrupted(Exception):
  """SIGTERM stopped training after a checkpoint of step ``step`` was saved.

  ``python -m train.main`` exits with the conventional status ``128 + signum`` (143),
  so a scheduler sees an unfinished run and can requeue it; the rerun resumes.
  """

  def __init__(self, signum: int, step: int, directory: str):
    self.signum = signum
    self.step = step
    super().__init__(
      f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved in "
      f"{directory}; rerun with the same --workdir to resume"
    )


class Decision(enum.Enum):
  """What `Guard` tells the loop to do after a step."""

  CONTINUE = "continue"
  ROLL_BACK = "roll back"  # resume from the latest checkpoint


def say(message: str) -> None:
  """Prints ``message`` from process 0 (above the progress bar)."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """When the actions run; steps are 1-based and the last step triggers every action."""

  total_steps: int
  log_every: int
  steps_per_epoch: int
  checkpoint_every: int  # 0: at epoch ends only

  def _every(self, step: int, n: int) -> bool:
    return (n > 0 and step % n == 0) or step == self.total_steps

  def log(self, step: int) -> bool:
    return self._every(step, self.log_every)

  def eval(self, step: int) -> bool:
    return self._every(step, self.steps_per_epoch)

  def save(self, step: int) -> bool:
    return self.eval(step) or self._every(step, self.checkpoint_every)


@dataclasses.dataclass
class Record:
  """What the loop accumulates between actions."""

  metrics: list = dataclasses.field(default_factory=list)  # train metrics since the last log
  guards: list = dataclasses.field(default_factory=list)  # (step, NaN/inf flags) not yet read
  eval: dict = dataclasses.field(default_factory=dict)  # the latest evaluation
  nonfinite: int = 0  # non-finite steps in this run
  replayed: set = dataclasses.field(default_factory=set)  # non-finite steps rolled back over
  stopping: int | None = None  # the signal every process agreed to stop on
  input_wait_s: float = 0.0  # time the loop waited for its next batch

  def add(self, step: int, metrics: dict[str, Any]) -> None:
    """Keeps a train step's (device) metrics; its guard flags go to ``guards``."""
    flags = (metrics.pop(FINITE), metrics.pop(FINITE_LEAVES), metrics["loss"])
    self.guards.append((step, flags))
    self.metrics.append(metrics)


@final
class StopSignals:
  """While active, SIGTERM and SIGINT only set ``signum``; the `Stop` action reads it.

  A second signal gets the previous handler's behaviour (Ctrl-C twice: KeyboardInterrupt
  at once). Handlers can only be set in the main thread; elsewhere this does nothing.
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> StopSignals:
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in _STOP_SIGNALS}
    return self

  def _handle(self, signum: int, frame: Any) -> None:
    self.signum = signum
    self._restore()

  def _restore(self) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, signal.SIG_DFL if handler is None else handler)

  def __exit__(self, *exc: object) -> None:
    self._restore()


def nonfinite_steps(
  guards: list[tuple[int, Any, Any, Any]], names: Sequence[str]
) -> list[tuple[int, str]]:
  """``(step, what was not finite)`` for each step in ``guards`` that was not applied.

  Args:
    guards: ``(step, FINITE, FINITE_LEAVES, loss)`` per step, host values of the train
      step's metrics (a leading device axis, as pmap returns, is read at index 0).
    names: the names of the guarded leaves (`steps.guarded_leaf_names`).
  """
  found = []
  for step, finite, leaves, loss in guards:
    if np.asarray(finite).reshape(-1)[0]:
      continue
    flags = np.asarray(leaves).reshape(-1, len(names))[0]
    bad = [name for name, ok in zip(names, flags, strict=True) if not ok]
    loss = float(np.asarray(loss).reshape(-1)[0])
    found.append((step, f"loss {loss}; non-finite values in: {listed(bad) or 'none'}"))
  return found


def nonfinite_leaves(state: TrainState) -> list[str]:
  """Names of the leaves of a host ``state`` that hold a NaN or an infinity."""
  leaves = jax.tree.leaves(state)
  return [n for n, x in zip(leaf_names(state), leaves, strict=True) if not np.isfinite(x).all()]


@dataclasses.dataclass
class Stop:
  """Every step: whether a stop signal reached any process (so all stop at one step)."""

  signals: StopSignals
  record: Record

  def __call__(self, step: int, state: Any) -> None:
    if parallel.any_process(self.signals.signum is not None):
      self.record.stopping = self.signals.signum or signal.SIGTERM


@dataclasses.dataclass
class Guard:
  """At log and save steps (and on a stop): reads the NaN/inf flags of the steps since.

  Returns `Decision.ROLL_BACK` under ``config.nonfinite == "rollback"`` when a step was
  not applied (unless every such step was rolled back over before), else
  `Decision.CONTINUE` (the steps were skipped). Raises `NonFiniteError` under
  ``"abort"`` and once more than ``config.max_nonfinite_steps`` steps were not applied.
  """

  config: ml_collections.ConfigDict
  layout: parallel.Layout
  schedule: Schedule
  record: Record
  names: Sequence[str]  # of the guarded leaves (`steps.guarded_leaf_names`)

  def __call__(self, step: int) -> Decision:
    record = self.record
    if not (self.schedule.log(step) or self.schedule.save(step) or record.stopping):
      return Decision.CONTINUE
    flags = self.layout.host([flags for _, flags in record.guards])
    found = nonfinite_steps([(s, *f) for (s, _), f in zip(record.guards, flags)], self.names)
    record.guards.clear()
    if not found:
      return Decision.CONTINUE
    record.nonfinite += len(found)
    listed = "; ".join(f"step {s}: {what}" for s, what in found)
    mode, limit = self.config.nonfinite, read(self.config, "max_nonfinite_steps", int)
    if mode == "abort" or record.nonfinite > limit:
      why = "" if mode == "abort" else f"; {record.nonfinite} steps > max_nonfinite_steps={limit}"
      raise NonFiniteError(
        f"non-finite values ({listed}); these steps were not applied; stopping "
        f"(config.nonfinite={mode!r}{why})"
      )
    rollback = mode == "rollback" and any(s not in record.replayed for s, _ in found)
    then = "rolling back to the latest checkpoint" if rollback else "steps skipped"
    logging.warning("non-finite values (%s); %s (config.nonfinite=%r)", listed, then, mode)
    if not rollback:
      return Decision.CONTINUE
    record.replayed.update(s for s, _ in found)
    return Decision.ROLL_BACK


@dataclasses.dataclass
class Log:
  """Every step: the progress bar; at log steps: mean train metrics and the GLIF gates."""

  layout: parallel.Layout
  schedule: Schedule
  record: Record
  writer: events.Writer
  bar: tqdm.tqdm

  def __call__(self, step: int, state: Any) -> None:
    self.bar.update()
    if not self.schedule.log(step):
      return
    history = self.layout.host(self.record.metrics)
    self.record.metrics.clear()
    train = {k: float(np.mean([m[k] for m in history])) for k in history[0]}
    self.writer.write_scalars(step, {f"train_{k}": v for k, v in train.items()})
    self.writer.write_scalars(step, events.gate_means(state.params, self.layout.host))
    self.bar.set_postfix(loss=train["loss"], acc=train["accuracy"])
    say(f"step {step}: " + format_metrics("train", train))


@dataclasses.dataclass
class Evaluate:
  """At each epoch's end: the eval metrics of ``evaluate(state)``."""

  evaluate: Callable[[Any], dict[str, float]]
  schedule: Schedule
  record: Record
  writer: events.Writer

  def __call__(self, step: int, state: Any) -> None:
    if self.schedule.eval(step):
      self.record.eval = self.evaluate(state)
      self.writer.write_scalars(step, {f"eval_{k}": v for k, v in self.record.eval.items()})
      say(f"step {step}: " + format_metrics("eval", self.record.eval))


@dataclasses.dataclass
class Checkpoint:
  """At save steps and on a stop: checks the state is finite, then saves it (orbax)."""

  manager: ocp.CheckpointManager
  layout: parallel.Layout
  schedule: Schedule
  record: Record

  def __call__(self, step: int, state: Any) -> None:
    if not (self.schedule.save(step) or self.record.stopping):
      return
    if bad := nonfinite_leaves(self.layout.host(state)):  # finite gradients, overflowing update
      raise NonFiniteError(
        f"the state after step {step} holds non-finite values ({listed(bad)}) though "
        "every applied step had a finite loss and gradients: an update overflowed (is "
        "the learning rate too large?); it was not saved; stopping"
      )
    accuracy = self.record.eval.get("accuracy") if self.schedule.eval(step) else None
    position = DataPosition(*divmod(step, self.schedule.steps_per_epoch))
    state = self.layout.checkpointable(state)
    checkpoints.save(self.manager, state, position, eval_accuracy=accuracy)


@dataclasses.dataclass
class Halt:
  """After the checkpoint of a stop: raises `KeyboardInterrupt` (SIGINT) or
  `TrainingInterrupted` (SIGTERM)."""

  record: Record
  directory: str

  def __call__(self, step: int, state: Any) -> None:
    if self.record.stopping == signal.SIGINT:
      raise KeyboardInterrupt(f"interrupted at step {step}; checkpoint saved")
    if self.record.stopping is not None:
      raise TrainingInterrupted(self.record.stopping, step, self.directory)


def format_metrics(prefix: str, metrics: dict[str, float]) -> str:
  """``"<prefix>_<name>=<value>, ..."`` of the scalar metrics (per-layer ones left out)."""
  return ", ".join(f"{prefix}_{k}={v:.4f}" for k, v in metrics.items() if "/" not in k)
