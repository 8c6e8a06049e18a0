"""`train_and_evaluate`: the training loop around the pure steps.

Everything is built once from the config: the data, the device layout (`parallel`), the
compiled steps, the checkpoint manager and the periodic actions. Then::

  for step in range(first, total_steps + 1):
    state, metrics = train_step(state, next(batches))
    for action in actions:  # guard, log, eval, checkpoint, stop
      action(step, state)

Multi-process runs (``config.distributed``) run the same loop in every process, each on
its rows of every global batch. Process 0 alone writes TensorBoard events and
``summary.json`` and shows the progress bar; orbax writes each checkpointed array once.

Reliability: a step with non-finite values is never applied (`train_step`), and the guard
action then skips, rolls back or aborts (``config.nonfinite``). SIGTERM and SIGINT
(Ctrl-C) to any process make every process save a checkpoint at the same step and stop
(`TrainingInterrupted`, `KeyboardInterrupt`); a rerun with the same workdir resumes
exactly, on the same or another number of processes and devices.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import logging
from flax import nnx
from tensorboardX import SummaryWriter

from glif_jax import models
from glif_jax.training import checkpoints, input_pipeline, losses, optim, parallel
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import validate_config, validate_input_shape
from glif_jax.training.steps import (
  FINITE,
  FINITE_LEAVES,
  LossFn,
  TrainState,
  create_train_state,
  eval_step,
  guarded_leaf_names,
  leaf_names,
  train_step,
)

SUMMARY_FILE = "summary.json"
GATE_NAMES = ("alpha", "beta", "gamma")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_MAX_LISTED = 5  # non-finite leaves named in a message
_DEVICE_PREFETCH = 2  # global batches placed on the devices ahead of the step


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


class _RollBack(Exception):
  """Raised by the guard action: restart from the latest checkpoint."""


class _StopSignals:
  """While active, SIGTERM and SIGINT only set ``signum``; the loop checks it once a step.

  A second signal gets the previous handler's behaviour (Ctrl-C twice: KeyboardInterrupt
  at once). Handlers can only be set in the main thread; elsewhere this does nothing.
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> _StopSignals:
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


class _Writer:
  """TensorBoard scalars from process 0; other processes write nothing."""

  def __init__(self, workdir: str | Path):
    self._writer = SummaryWriter(str(workdir)) if jax.process_index() == 0 else None

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if self._writer is not None:
      for k, v in scalars.items():
        self._writer.add_scalar(k, v, step)
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def _say(message: str) -> None:
  """Prints ``message`` from process 0 (above the progress bar)."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(message)


def make_loss(config: ml_collections.ConfigDict) -> LossFn:
  """The per-example loss ``config.loss`` names, with its options bound."""
  if config.loss == "tet":
    return functools.partial(
      losses.tet_loss,
      label_smoothing=config.label_smoothing,
      mse_weight=config.tet_mse_weight,
      mse_target=config.tet_mse_target,
    )
  return functools.partial(losses.mean_logits_cross_entropy, label_smoothing=config.label_smoothing)


def make_tx(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int):
  """The optimiser of ``config`` with its warm-up + cosine schedule over ``total_steps``."""
  schedule = optim.learning_rate_schedule(
    config.learning_rate,
    total_steps=total_steps,
    warmup_steps=int(config.warmup_epochs * steps_per_epoch),
  )
  return optim.make_optimizer(
    optimizer=config.optimizer,
    learning_rate=schedule,
    momentum=config.momentum,
    weight_decay=config.weight_decay,
    neuron_lr_scale=config.neuron_lr_scale,
    grad_clip_norm=config.grad_clip_norm,
  )


def create_model(
  config: ml_collections.ConfigDict,
  info: input_pipeline.DataInfo,
  *,
  bn_axis_name: str | None = None,
) -> nnx.Module:
  """The model of ``config`` for data described by ``info``.

  ``bn_axis_name``: the pmap axis tdBN averages its batch statistics over (None under
  jit, where the global batch is one array).
  """
  return models.create(
    config.model,
    num_classes=info.num_classes,
    timesteps=config.timesteps,
    in_channels=info.input_shape[-1],
    neuron=config.neuron,
    neuron_options=config.neuron_options.to_dict(),
    width=config.width,
    input_size=info.input_shape[-2],
    remat=config.remat,
    bn_axis_name=bn_axis_name,
    dtype=jnp.dtype(config.dtype),
    rngs=nnx.Rngs(config.seed),
  )


def gate_means(
  params: nnx.State, to_host: Callable[[Any], Any] = parallel.host
) -> dict[str, float]:
  """``{"gate/<GLIF layer>/<alpha|beta|gamma>": mean over channels of σ(raw gate)}``.

  GLIF layers are found by their parameters (``alpha``, ``beta``, ``gamma``, ``conduct``);
  GLIF_f layers (fixed gates) have none. Only these small leaves go through ``to_host``.
  """
  flat = {
    tuple(str(k.key) for k in path): x
    for path, x in jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(params))[0]
  }
  layers = sorted(path[:-1] for path in flat if path[-1] == "conduct")
  gates = {
    f"gate/{'/'.join(layer)}/{g}": flat[(*layer, g)]
    for layer in layers
    for g in GATE_NAMES
    if (*layer, g) in flat
  }
  return {k: float(np.mean(1 / (1 + np.exp(-raw)))) for k, raw in to_host(gates).items()}


def evaluate(
  p_eval_step: Callable[..., dict[str, jax.Array]],
  layout: parallel.Layout,
  state: Any,
  source: Sequence[Any],
  config: ml_collections.ConfigDict,
) -> dict[str, float]:
  """Mean eval metrics over ``source``: ``loss``, ``accuracy``, ``firing_rate/<layer>``."""
  rows = layout.rows(config.eval_batch_size)
  totals: dict[str, float] = collections.defaultdict(float)
  for local in input_pipeline.batches(source, config, train=False, rows=rows):
    sums = layout.host(p_eval_step(state, layout.batch(local, config.eval_batch_size)))
    for k, v in sums.items():
      totals[k] += float(np.sum(v))
  count = totals.pop("count")
  totals["accuracy"] = totals.pop("correct")
  return {k: v / count for k, v in totals.items()}


def _on_devices(
  batches: Iterator[dict[str, np.ndarray]], layout: parallel.Layout, batch_size: int
) -> Iterator[Any]:
  """Global batches from this process's rows, placed `_DEVICE_PREFETCH` steps ahead."""
  ahead: collections.deque = collections.deque()
  for local in batches:
    ahead.append(layout.batch(local, batch_size))
    if len(ahead) > _DEVICE_PREFETCH:
      yield ahead.popleft()
  yield from ahead


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
    found.append((step, f"loss {loss}; non-finite values in: {_listed(bad) or 'none'}"))
  return found


def _listed(names: Sequence[str]) -> str:
  more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
  return ", ".join(names[:_MAX_LISTED]) + more


def nonfinite_leaves(state: TrainState) -> list[str]:
  """Names of the leaves of a host ``state`` that hold a NaN or an infinity."""
  leaves = jax.tree.leaves(state)
  return [n for n, x in zip(leaf_names(state), leaves, strict=True) if not np.isfinite(x).all()]


def _nonfinite_action(
  config: ml_collections.ConfigDict,
  found: list[tuple[int, str]],
  *,
  count: int,
  replayed: set[int],
) -> bool:
  """Reports the non-finite steps ``found``; True to roll back, False to go on.

  Raises `NonFiniteError` under ``config.nonfinite == "abort"``, and once ``count``
  (non-finite steps in this run, ``found`` included) exceeds
  ``config.max_nonfinite_steps``. Under ``"rollback"``, steps already in ``replayed``
  (non-finite again after a rollback) are skipped instead.
  """
  listed = "; ".join(f"step {step}: {what}" for step, what in found)
  mode = config.nonfinite
  if mode == "abort" or count > config.max_nonfinite_steps:
    limit = config.max_nonfinite_steps
    why = "" if mode == "abort" else f"; {count} steps > max_nonfinite_steps={limit}"
    raise NonFiniteError(
      f"non-finite values ({listed}); these steps were not applied; stopping "
      f"(config.nonfinite={mode!r}{why})"
    )
  rollback = mode == "rollback" and any(step not in replayed for step, _ in found)
  then = "rolling back to the latest checkpoint" if rollback else "steps skipped"
  logging.warning("non-finite values (%s); %s (config.nonfinite=%r)", listed, then, mode)
  return rollback


@dataclasses.dataclass
class _Record:
  """What the loop keeps between actions (the steps' outputs stay on the devices)."""

  metrics: list = dataclasses.field(default_factory=list)  # since the last log
  guards: list = dataclasses.field(default_factory=list)  # flags not yet read
  eval: dict = dataclasses.field(default_factory=dict)  # the latest evaluation
  nonfinite: int = 0  # non-finite steps in this run
  replayed: set = dataclasses.field(default_factory=set)  # steps replayed by a rollback
  stopping: int | None = None  # the agreed stop signal
  input_wait_s: float = 0.0  # time the loop waited for the next batch

  def add(self, step: int, metrics: dict[str, Any]) -> None:
    self.guards.append((step, (metrics.pop(FINITE), metrics.pop(FINITE_LEAVES), metrics["loss"])))
    self.metrics.append(metrics)


@dataclasses.dataclass(frozen=True)
class _Schedule:
  """When the periodic actions run (steps are 1-based; the last step triggers all)."""

  total: int
  log_every: int
  epoch: int
  checkpoint_every: int

  def _every(self, step: int, n: int) -> bool:
    return (n > 0 and step % n == 0) or step == self.total

  def log(self, step: int) -> bool:
    return self._every(step, self.log_every)

  def eval(self, step: int) -> bool:
    return self._every(step, self.epoch)

  def save(self, step: int) -> bool:
    return self.eval(step) or self._every(step, self.checkpoint_every)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> TrainState:
  """Trains ``config``'s model, evaluating each epoch; resumes from ``workdir`` if it can.

  Writes to ``workdir`` (process 0): ``config.json``, TensorBoard scalars (``train_*``,
  ``eval_*``, ``gate/<layer>/<gate>`` from step 0), orbax checkpoints under
  ``checkpoints/`` and, at the end, ``summary.json`` (test and best accuracy, mean
  firing rate per layer, non-finite steps, input wait, wall time), which is also printed.

  Args:
    config: the training config (keys as in `glif_jax.training.config.default_config`).
    workdir: the run's directory.

  Returns:
    The final `TrainState` (host arrays).

  Raises:
    ConfigError: a bad config (raised before anything is built or compiled), or a workdir
      made with another config.
    NonFiniteError: non-finite values, as ``config.nonfinite`` says.
    TrainingInterrupted: SIGTERM; a checkpoint of the current step was saved first.
    KeyboardInterrupt: SIGINT (Ctrl-C); a checkpoint of the current step was saved first.
    checkpoints.CheckpointMismatchError: the workdir's checkpoints hold another model.
    checkpoints.CorruptCheckpointError: the workdir has checkpoints but none is intact.
  """
  start_time = time.time()
  validate_config(
    config, dataset_names=input_pipeline.dataset_names(), num_devices=jax.device_count()
  )
  checkpoints.guard_workdir(workdir, config)
  splits, info = input_pipeline.load(config)
  validate_input_shape(config, info.input_shape)
  layout = parallel.Layout(config.parallel)
  per_epoch = input_pipeline.steps_per_epoch(splits["train"], config)
  total_steps = config.num_train_steps
  if total_steps <= 0:
    total_steps = config.num_epochs * per_epoch
  schedule = _Schedule(
    total_steps, config.log_every_steps, per_epoch, config.checkpoint_every_steps
  )
  tx, loss_fn = make_tx(config, per_epoch, total_steps), make_loss(config)
  model = create_model(config, info, bn_axis_name=layout.axis_name)
  graphdefs, initial = create_train_state(model, tx)
  p_train_step = layout.compile(
    functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=loss_fn), donate=(0,)
  )
  p_eval_step = layout.compile(
    functools.partial(eval_step, graphdef=graphdefs.eval, loss_fn=loss_fn)
  )
  run_eval = functools.partial(evaluate, p_eval_step, layout, source=splits["test"], config=config)
  rows = layout.rows(config.batch_size)

  def batches_from(position: DataPosition) -> Iterator[Any]:
    local = input_pipeline.train_stream(splits["train"], config, position, rows=rows)
    return _on_devices(local, layout, config.batch_size)

  abstract = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=layout.replicated), initial
  )
  guarded_names = guarded_leaf_names(initial)
  record = _Record()

  with contextlib.ExitStack() as stack:
    manager = checkpoints.checkpoint_manager(workdir, max_to_keep=config.max_to_keep)
    stack.callback(manager.close)
    stack.callback(manager.wait_until_finished)  # runs first: a save in flight completes
    writer = _Writer(workdir)
    stack.callback(writer.close)
    bar = tqdm.tqdm(
      total=total_steps, disable=not config.progress_bar or jax.process_index() > 0, desc="train"
    )
    stack.callback(bar.close)
    stop = stack.enter_context(_StopSignals())

    def restore() -> tuple[Any, DataPosition]:
      restored = checkpoints.restore_latest(manager, abstract)
      state, position = restored or (initial, DataPosition(0, 0))
      bar.reset()
      bar.update(position.epoch * per_epoch + position.batch)
      return layout.state(state), position

    def guard(step: int, state: Any) -> None:
      if not (schedule.log(step) or schedule.save(step) or record.stopping):
        return
      flags = layout.host([flags for _, flags in record.guards])
      steps = [s for s, _ in record.guards]
      found = nonfinite_steps([(s, *f) for s, f in zip(steps, flags)], guarded_names)
      record.guards.clear()
      record.nonfinite += len(found)
      if found and _nonfinite_action(
        config, found, count=record.nonfinite, replayed=record.replayed
      ):
        record.replayed.update(s for s, _ in found)
        raise _RollBack

    def log(step: int, state: Any) -> None:
      if schedule.log(step):
        history = layout.host(record.metrics)
        record.metrics.clear()
        train = {k: float(np.mean([m[k] for m in history])) for k in history[0]}
        writer.write_scalars(step, {f"train_{k}": v for k, v in train.items()})
        writer.write_scalars(step, gate_means(state.params, layout.host))
        bar.set_postfix(loss=train["loss"], acc=train["accuracy"])
        _say(f"step {step}: " + _format("train", train))

    def evaluate_(step: int, state: Any) -> None:
      if schedule.eval(step):
        record.eval = run_eval(state)
        writer.write_scalars(step, {f"eval_{k}": v for k, v in record.eval.items()})
        _say(f"step {step}: " + _format("eval", record.eval))

    def checkpoint(step: int, state: Any) -> None:
      if schedule.save(step) or record.stopping:
        if bad := nonfinite_leaves(layout.host(state)):  # finite gradients, overflowing update
          raise NonFiniteError(
            f"the state after step {step} holds non-finite values ({_listed(bad)}) though "
            "every applied step had a finite loss and gradients: an update overflowed (is "
            "the learning rate too large?); it was not saved; stopping"
          )
        accuracy = record.eval.get("accuracy") if schedule.eval(step) else None
        position = DataPosition(*divmod(step, per_epoch))
        checkpoints.save(manager, layout.checkpointable(state), position, eval_accuracy=accuracy)

    def halt(step: int, state: Any) -> None:
      if record.stopping == signal.SIGINT:
        raise KeyboardInterrupt(f"interrupted at step {step}; checkpoint saved")
      if record.stopping is not None:
        raise TrainingInterrupted(record.stopping, step, str(manager.directory))

    actions = (guard, log, evaluate_, checkpoint, halt)
    state, position = restore()
    first = position.epoch * per_epoch + position.batch
    if first:
      _say(f"resuming at step {first} from {manager.directory}")
    else:
      writer.write_scalars(0, gate_means(state.params, layout.host))
    while True:
      try:
        state = _train(
          p_train_step,
          state,
          first,
          total_steps,
          batches_from(position),
          actions,
          record,
          stop,
          bar,
        )
        break
      except _RollBack:
        manager.wait_until_finished()
        state, position = restore()
        first = position.epoch * per_epoch + position.batch
        record.metrics.clear()
        _say(f"rolled back to step {first}")
    if not record.eval:  # nothing was left to train: evaluate the restored state
      record.eval = run_eval(state)
    manager.wait_until_finished()
    final = layout.host(state)
    summary = {
      "test_accuracy": record.eval["accuracy"],
      "test_loss": record.eval["loss"],
      "best_accuracy": checkpoints.best_accuracy(manager),
      "firing_rate": _layer_rates(record.eval),
      "steps": int(final.step),
      "epochs": int(final.step) / per_epoch,
      "nonfinite_steps": record.nonfinite,
      "input_wait_s": record.input_wait_s,
      "wall_time_s": time.time() - start_time,
    }
  if jax.process_index() == 0:
    Path(workdir, SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
  return final


def _train(
  p_train_step: Callable[..., Any],
  state: Any,
  first: int,
  total_steps: int,
  batches: Iterator[Any],
  actions: Sequence[Callable[[int, Any], None]],
  record: _Record,
  stop: _StopSignals,
  bar: tqdm.tqdm,
) -> Any:
  """Steps ``first + 1 ... total_steps``, running the ``actions`` after each step."""
  for step in range(first + 1, total_steps + 1):
    waited = time.perf_counter()
    batch = next(batches)
    record.input_wait_s += time.perf_counter() - waited
    state, metrics = p_train_step(state, batch)
    record.add(step, metrics)
    bar.update()
    if parallel.any_process(stop.signum is not None):  # every process stops at this step
      record.stopping = stop.signum or signal.SIGTERM
    for action in actions:
      action(step, state)
  return state


def _format(prefix: str, metrics: dict[str, float]) -> str:
  return ", ".join(f"{prefix}_{k}={v:.4f}" for k, v in metrics.items() if "/" not in k)


def _layer_rates(metrics: dict[str, float]) -> dict[str, float]:
  """``{layer: rate}`` from the ``firing_rate/<layer>`` metrics."""
  prefix = "firing_rate/"
  return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}
