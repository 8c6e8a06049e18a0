"""What the training loop does besides the step: stop, guard, log, evaluate, checkpoint, halt.

Plain functions that `glif_jax.training.train`'s loop calls in its own order, each given
what it needs; the loop keeps its own counts. `Schedule` says when each runs; `guard`
decides, from the NaN/inf flags of the steps since it last ran, whether the loop goes on
or rolls back.
"""

from __future__ import annotations

import dataclasses
import enum
import signal
import threading
from collections.abc import Sequence
from typing import Any, final

import jax
import numpy as np
import orbax.checkpoint as ocp
import tqdm
from absl import logging

from glif_jax.training import checkpoints, events, parallel
from glif_jax.training.checkpoints import DataPosition
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
  flags: Sequence[tuple[int, tuple[Any, Any, Any]]],
  layout: parallel.Layout,
  names: Sequence[str],
) -> list[tuple[int, str]]:
  """``(step, what was not finite)`` for each step of ``flags`` that was not applied.

  Args:
    flags: ``(step, (FINITE, FINITE_LEAVES, loss))`` per step, the train step's outputs
      (`guard_flags`) as ``layout`` places them.
    layout: where the flags live.
    names: the names of the guarded leaves (`steps.guarded_leaf_names`).
  """
  if not flags:
    return []
  steps, placed = zip(*flags, strict=True)
  found = []
  for step, (finite, leaves, loss) in zip(steps, layout.host(list(placed)), strict=True):
    if np.asarray(finite).reshape(-1)[0]:
      continue
    flags = np.asarray(leaves).reshape(-1, len(names))[0]
    bad = [name for name, ok in zip(names, flags, strict=True) if not ok]
    loss = float(np.asarray(loss).reshape(-1)[0])
    found.append((step, f"loss {loss}; non-finite values in: {listed(bad) or 'none'}"))
  return found


def guard_flags(metrics: dict[str, Any]) -> tuple[Any, Any, Any]:
  """``(FINITE, FINITE_LEAVES, loss)`` of a train step's (device) ``metrics``; the first
  two are taken out of ``metrics``."""
  return metrics.pop(FINITE), metrics.pop(FINITE_LEAVES), metrics["loss"]


def nonfinite_leaves(state: TrainState) -> list[str]:
  """Names of the leaves of a host ``state`` that hold a NaN or an infinity."""
  leaves = jax.tree.leaves(state)
  return [n for n, x in zip(leaf_names(state), leaves, strict=True) if not np.isfinite(x).all()]


def agreed_stop(signals: StopSignals) -> int | None:
  """The signal a stop was asked by in any process (SIGTERM where this process got none),
  or None: every process stops at the same step (a collective, called after every step)."""
  if parallel.any_process(signals.signum is not None):
    return signals.signum or signal.SIGTERM
  return None


def guard(
  found: list[tuple[int, str]], *, mode: str, limit: int, skipped: int, replayed: set[int]
) -> Decision:
  """What the loop does about the non-finite steps ``found`` (`nonfinite_steps`).

  Args:
    found: ``(step, what was not finite)`` of the steps since the last guard.
    mode: ``config.nonfinite``: "skip", "rollback" or "abort".
    limit: ``config.max_nonfinite_steps``.
    skipped: the steps not applied in this run so far, ``found`` included.
    replayed: the non-finite steps already rolled back over (replayed, they are skipped).

  Returns:
    `Decision.ROLL_BACK` under "rollback" when a step of ``found`` was not rolled back
    over before; else `Decision.CONTINUE` (the steps stay skipped).

  Raises:
    NonFiniteError: under "abort" when ``found`` is not empty, and once ``skipped`` >
      ``limit``.
  """
  if not found:
    return Decision.CONTINUE
  listed_steps = "; ".join(f"step {s}: {what}" for s, what in found)
  if mode == "abort" or skipped > limit:
    why = "" if mode == "abort" else f"; {skipped} steps > max_nonfinite_steps={limit}"
    raise NonFiniteError(
      f"non-finite values ({listed_steps}); these steps were not applied; stopping "
      f"(config.nonfinite={mode!r}{why})"
    )
  rollback = mode == "rollback" and any(s not in replayed for s, _ in found)
  then = "rolling back to the latest checkpoint" if rollback else "steps skipped"
  logging.warning("non-finite values (%s); %s (config.nonfinite=%r)", listed_steps, then, mode)
  return Decision.ROLL_BACK if rollback else Decision.CONTINUE


def log_gates(step: int, state: Any, layout: parallel.Layout, writer: events.Writer) -> None:
  """Writes the mean gates of every GLIF layer of ``state`` (`events.gate_means`)."""
  writer.write_scalars(step, events.gate_means(state.params, layout.host))


def log_train(
  step: int,
  metrics: list[dict[str, Any]],
  state: Any,
  layout: parallel.Layout,
  writer: events.Writer,
  bar: tqdm.tqdm,
) -> None:
  """Writes the mean of the train ``metrics`` since the last log and the GLIF gates of
  ``state``, and shows the means on the bar and the console."""
  history = layout.host(metrics)
  train = {k: float(np.mean([m[k] for m in history])) for k in history[0]}
  bar.set_postfix(loss=train["loss"], acc=train["accuracy"])
  say(f"step {step}: " + format_metrics("train", train))
  writer.write_scalars(step, {f"train_{k}": v for k, v in train.items()})
  log_gates(step, state, layout, writer)


def log_eval(step: int, evaluation: dict[str, float], writer: events.Writer) -> None:
  """Shows and writes the eval metrics of step ``step``."""
  say(f"step {step}: " + format_metrics("eval", evaluation))
  writer.write_scalars(step, {f"eval_{k}": v for k, v in evaluation.items()})


def save(
  manager: ocp.CheckpointManager,
  layout: parallel.Layout,
  state: Any,
  step: int,
  steps_per_epoch: int,
  *,
  eval_accuracy: float | None,
) -> None:
  """Saves ``state`` after ``step`` (orbax, with its data position) after checking it is
  finite; ``eval_accuracy`` (None between evaluations) ranks the best checkpoint.

  Raises:
    NonFiniteError: the state holds NaN/inf (an overflowing update of finite gradients);
      it is not saved.
  """
  if bad := nonfinite_leaves(layout.host(state)):
    raise NonFiniteError(
      f"the state after step {step} holds non-finite values ({listed(bad)}) though every "
      "applied step had a finite loss and gradients: an update overflowed (is the learning "
      "rate too large?); it was not saved; stopping"
    )
  position = DataPosition(*divmod(step, steps_per_epoch))
  checkpoints.save(manager, layout.checkpointable(state), position, eval_accuracy=eval_accuracy)


def halt(signum: int, step: int, directory: str) -> None:
  """Raises `KeyboardInterrupt` (SIGINT) or `TrainingInterrupted` (other signals): the
  checkpoint of ``step`` was saved in ``directory``."""
  if signum == signal.SIGINT:
    raise KeyboardInterrupt(f"interrupted at step {step}; checkpoint saved")
  raise TrainingInterrupted(signum, step, directory)


def format_metrics(prefix: str, metrics: dict[str, float]) -> str:
  """``"<prefix>_<name>=<value>, ..."`` of the scalar metrics (per-layer ones left out)."""
  return ", ".join(f"{prefix}_{k}={v:.4f}" for k, v in metrics.items() if "/" not in k)
