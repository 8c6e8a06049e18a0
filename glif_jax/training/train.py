"""`train_and_evaluate`: the training loop around the pure steps.

With several local devices the steps run under `jax.pmap` (axis ``"batch"``):
parameters are replicated, every device takes ``B/D`` examples of each global batch, and
gradients, metrics and tdBN statistics are averaged over the axis. With one device the
same step functions run under `jax.jit` with the same ``[1, B, ...]`` inputs.

Reliability: a step with non-finite values is never applied (`train_step`), and the loop
then skips, rolls back or aborts (``config.nonfinite``); SIGTERM and SIGINT (Ctrl-C) make
the loop save a checkpoint at the current step and stop (`TrainingInterrupted`,
`KeyboardInterrupt`); a rerun with the same workdir resumes exactly.
"""

from __future__ import annotations

import functools
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import logging
from flax import nnx
from tensorboardX import SummaryWriter

from glif_jax import models
from glif_jax.training import checkpoints, input_pipeline, losses, optim
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

AXIS = "batch"
SUMMARY_FILE = "summary.json"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_MAX_LISTED = 5  # non-finite leaves named in a message


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
  bn_axis_name: str | None = AXIS,
) -> nnx.Module:
  """The model of ``config`` for data described by ``info``."""
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


def _axis() -> str | None:
  """The device axis of the steps: ``"batch"`` with several local devices, else None."""
  return AXIS if jax.local_device_count() > 1 else None


def _parallelize(step: Callable[..., Any], *, donate: tuple[int, ...]) -> Callable[..., Any]:
  """``step`` on replicated state and ``[D, B/D, ...]`` batches over the local devices.

  Several devices: `jax.pmap` with ``axis_name="batch"``. One device: `jax.jit` on the
  squeezed device axis (same inputs and outputs), because pmap runs a CPU step ~3× slower
  than jit (measured on cnn_small).
  """
  if _axis() is not None:
    return jax.pmap(functools.partial(step, axis_name=AXIS), axis_name=AXIS, donate_argnums=donate)

  def single_device(*args):
    out = step(*jax.tree.map(lambda x: x[0], args), axis_name=None)
    return jax.tree.map(lambda x: x[None], out)

  return jax.jit(single_device, donate_argnums=donate)


def _replicate(tree: Any) -> Any:
  n = jax.local_device_count()
  return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)


def _unreplicate(tree: Any) -> Any:
  return jax.device_get(jax.tree.map(lambda x: x[0], tree))


def _position(step: int, steps_per_epoch: int) -> DataPosition:
  return DataPosition(*divmod(step, steps_per_epoch))


def evaluate(
  p_eval_step: Callable[..., dict[str, jax.Array]],
  state: TrainState,
  source: Sequence[Any],
  config: ml_collections.ConfigDict,
) -> dict[str, float]:
  """Mean eval metrics over ``source``: ``loss``, ``accuracy``, ``firing_rate/<layer>``."""
  totals: dict[str, float] = {}
  for batch in input_pipeline.batches(source, config, train=False):
    sums = jax.device_get(p_eval_step(state, batch))
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v[0])
  count = totals.pop("count")
  totals["accuracy"] = totals.pop("correct")
  return {k: v / count for k, v in totals.items()}


def _mean_metrics(history: list[dict[str, jax.Array]]) -> dict[str, float]:
  stacked = jax.device_get(history)
  return {k: float(np.mean([m[k][0] for m in stacked])) for k in stacked[0]}


def _format(prefix: str, metrics: dict[str, float]) -> str:
  return ", ".join(f"{prefix}_{k}={v:.4f}" for k, v in metrics.items() if "/" not in k)


def _layer_rates(metrics: dict[str, float]) -> dict[str, float]:
  """``{layer: rate}`` from the ``firing_rate/<layer>`` metrics."""
  prefix = "firing_rate/"
  return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


def _write(writer: SummaryWriter, prefix: str, metrics: dict[str, float], step: int) -> None:
  for k, v in metrics.items():
    writer.add_scalar(f"{prefix}_{k}", v, step)
  writer.flush()


def nonfinite_steps(
  guards: list[tuple[int, Any, Any, Any]], names: Sequence[str]
) -> list[tuple[int, str]]:
  """``(step, what was not finite)`` for each step in ``guards`` that was not applied.

  Args:
    guards: ``(step, FINITE, FINITE_LEAVES, loss)`` per step, from the (replicated)
      train step's metrics; fetched from the devices here.
    names: the names of the guarded leaves (`steps.guarded_leaf_names`).
  """
  found = []
  for step, finite, leaves, loss in jax.device_get(guards):
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> TrainState:
  """Trains ``config``'s model, evaluating each epoch; resumes from ``workdir`` if it can.

  Writes to ``workdir``: ``config.json``, TensorBoard scalars (``train_*``, ``eval_*``),
  orbax checkpoints under ``checkpoints/`` and, at the end, ``summary.json`` (test and
  best accuracy, mean firing rate per layer, non-finite steps, wall time), which is also
  printed.

  Args:
    config: the training config (keys as in `glif_jax.training.config.default_config`).
    workdir: the run's directory.

  Returns:
    The final `TrainState` (host arrays).

  Raises:
    ValueError: a bad config (raised before anything is built or compiled), or a workdir
      made with another config or model.
    NonFiniteError: non-finite values, as ``config.nonfinite`` says.
    TrainingInterrupted: SIGTERM; a checkpoint of the current step was saved first.
    KeyboardInterrupt: SIGINT (Ctrl-C); a checkpoint of the current step was saved first.
    checkpoints.CorruptCheckpointError: the workdir has checkpoints but none is intact.
  """
  start_time = time.time()
  validate_config(
    config, dataset_names=input_pipeline.dataset_names(), num_devices=jax.device_count()
  )
  checkpoints.guard_workdir(workdir, config)
  splits, info = input_pipeline.load(config)
  validate_input_shape(config, info.input_shape)
  steps_per_epoch = input_pipeline.steps_per_epoch(splits["train"], config)
  total_steps = config.num_epochs * steps_per_epoch
  if config.num_train_steps > 0:
    total_steps = config.num_train_steps
  tx = make_tx(config, steps_per_epoch, total_steps)
  loss_fn = make_loss(config)

  def fresh_state() -> tuple[Any, TrainState]:
    return create_train_state(create_model(config, info, bn_axis_name=_axis()), tx)

  graphdefs, state = fresh_state()
  guarded_names = guarded_leaf_names(state)
  template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  manager = checkpoints.checkpoint_manager(workdir, max_to_keep=config.max_to_keep)
  restored = checkpoints.restore_latest(manager, template)
  state, position = restored or (state, DataPosition(0, 0))
  p_train_step = _parallelize(
    functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=loss_fn), donate=(0,)
  )
  p_eval_step = _parallelize(
    functools.partial(eval_step, graphdef=graphdefs.eval, loss_fn=loss_fn), donate=()
  )
  writer = SummaryWriter(str(workdir))
  done = int(state.step)
  state = _replicate(state)
  stream = input_pipeline.train_stream(splits["train"], config, position)
  history: list[dict[str, jax.Array]] = []
  guards: list[tuple[int, Any, Any, Any]] = []  # steps whose guard flags are not yet read
  nonfinite_count, replayed = 0, set()
  eval_metrics: dict[str, float] = {}
  bar = tqdm.tqdm(initial=done, total=total_steps, disable=not config.progress_bar, desc="train")
  if restored:
    bar.write(f"resuming at step {done} from {manager.directory}")
  with _StopSignals() as stop:
    try:
      while done < total_steps:
        state, metrics = p_train_step(state, next(stream))
        done += 1
        bar.update()
        guards.append((done, metrics.pop(FINITE), metrics.pop(FINITE_LEAVES), metrics["loss"]))
        history.append(metrics)
        log = done % config.log_every_steps == 0 or done == total_steps
        epoch_end = done % steps_per_epoch == 0 or done == total_steps
        save = epoch_end or (
          config.checkpoint_every_steps > 0 and done % config.checkpoint_every_steps == 0
        )
        if log or save or stop.signum is not None:  # read the guard flags: a host sync
          found = nonfinite_steps(guards, guarded_names)
          guards = []
          nonfinite_count += len(found)
          if found and _nonfinite_action(config, found, count=nonfinite_count, replayed=replayed):
            replayed.update(step for step, _ in found)
            manager.wait_until_finished()
            host, position = checkpoints.restore_latest(manager, template) or (
              fresh_state()[1],
              DataPosition(0, 0),
            )
            done, state = int(host.step), _replicate(host)
            stream = input_pipeline.train_stream(splits["train"], config, position)
            history = []
            bar.n = done
            bar.write(f"rolled back to step {done}")
            continue
        if log:
          train_metrics = _mean_metrics(history)
          history = []
          _write(writer, "train", train_metrics, done)
          bar.set_postfix(loss=train_metrics["loss"], acc=train_metrics["accuracy"])
          bar.write(f"step {done}: " + _format("train", train_metrics))
        accuracy = None
        if epoch_end:
          eval_metrics = evaluate(p_eval_step, state, splits["test"], config)
          _write(writer, "eval", eval_metrics, done)
          accuracy = eval_metrics["accuracy"]
          bar.write(f"step {done}: " + _format("eval", eval_metrics))
        if save or stop.signum is not None:
          host = _unreplicate(state)
          if bad := nonfinite_leaves(host):  # finite gradients, overflowing update
            raise NonFiniteError(
              f"the state after step {done} holds non-finite values ({_listed(bad)}) though "
              "every applied step had a finite loss and gradients: an update overflowed (is "
              "the learning rate too large?); it was not saved; stopping"
            )
          position = _position(done, steps_per_epoch)
          checkpoints.save(manager, host, position, eval_accuracy=accuracy)
        if stop.signum == signal.SIGINT:
          raise KeyboardInterrupt(f"interrupted at step {done}; checkpoint saved")
        if stop.signum is not None:
          raise TrainingInterrupted(stop.signum, done, str(manager.directory))
    except BaseException:
      bar.close()
      writer.close()
      manager.wait_until_finished()  # a checkpoint being written is finished
      manager.close()
      raise
  bar.close()
  writer.close()
  manager.wait_until_finished()
  if not eval_metrics:  # nothing was left to train: evaluate the restored state
    eval_metrics = evaluate(p_eval_step, state, splits["test"], config)
  final = _unreplicate(state)
  summary = {
    "test_accuracy": eval_metrics["accuracy"],
    "test_loss": eval_metrics["loss"],
    "best_accuracy": checkpoints.best_accuracy(manager),
    "firing_rate": _layer_rates(eval_metrics),
    "steps": int(final.step),
    "epochs": int(final.step) / steps_per_epoch,
    "nonfinite_steps": nonfinite_count,
    "wall_time_s": time.time() - start_time,
  }
  manager.close()
  Path(workdir, SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
  print(json.dumps(summary, indent=2))
  return final
