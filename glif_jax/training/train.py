"""`train_and_evaluate`: the training loop around the pure steps.

Everything is built once from the config: the data, the device layout (`parallel`), the
compiled steps, the checkpoint manager and the periodic actions (`actions`). Then::

  for step in range(first + 1, total_steps + 1):
    state, metrics = train_step(state, next(batches))
    for action in periodic:  # stop, guard, log, evaluate, checkpoint, halt
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
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from flax import nnx

from glif_jax import data, models
from glif_jax.training import actions, checkpoints, input_pipeline, losses, optim, parallel
from glif_jax.training.actions import gate_means
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import (
  agree_across_processes,
  read,
  read_optional,
  validate_config,
  validate_input_shape,
)
from glif_jax.training.steps import (
  LossFn,
  TrainState,
  create_train_state,
  eval_step,
  guarded_leaf_names,
  train_step,
)

SUMMARY_FILE = "summary.json"
_DEVICE_PREFETCH = 2  # global batches placed on the devices ahead of the step


def make_loss(config: ml_collections.ConfigDict) -> LossFn:
  """The per-example loss ``config.loss`` names, with its options bound."""
  label_smoothing = read(config, "label_smoothing", float)
  if config.loss == "tet":
    return functools.partial(
      losses.tet_loss,
      label_smoothing=label_smoothing,
      mse_weight=read(config, "tet_mse_weight", float),
      mse_target=read(config, "tet_mse_target", float),
    )
  return functools.partial(losses.mean_logits_cross_entropy, label_smoothing=label_smoothing)


def make_tx(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int):
  """The optimiser of ``config`` with its learning-rate schedule over ``total_steps``."""
  schedule = optim.learning_rate_schedule(
    read(config, "learning_rate", float),
    total_steps=total_steps,
    warmup_steps=int(read(config, "warmup_epochs", float) * steps_per_epoch),
    steps_per_epoch=steps_per_epoch,
    cosine_period_epochs=read_optional(config, "cosine_period_epochs", float),
  )
  return optim.make_optimizer(
    optimizer=read(config, "optimizer", str),
    learning_rate=schedule,
    momentum=read(config, "momentum", float),
    weight_decay=read(config, "weight_decay", float),
    neuron_lr_scale=read(config, "neuron_lr_scale", float),
    gate_lr_scale=read(config, "gate_lr_scale", float),
    grad_clip_norm=read_optional(config, "grad_clip_norm", float),
  )


def create_model(
  config: ml_collections.ConfigDict,
  info: data.DatasetInfo,
  *,
  bn_axis_name: str | None = None,
) -> nnx.Module:
  """The model of ``config`` for data described by ``info``.

  ``bn_axis_name``: the pmap axis tdBN averages its batch statistics over (None under
  jit, where the global batch is one array).
  """
  # The config.json of a run from before the key "norm" has none.
  norm = read_optional(config, "norm", str) if "norm" in config else None
  return models.create(
    read(config, "model", str),
    num_classes=info.num_classes,
    timesteps=read(config, "timesteps", int),
    in_channels=info.input_shape[-1],
    neuron=read(config, "neuron", str),
    neuron_options=read(config, "neuron_options", ml_collections.ConfigDict).to_dict(),
    norm=norm,
    width=read_optional(config, "width", int),
    input_size=info.input_shape[-2],
    remat=read(config, "remat", bool),
    bn_axis_name=bn_axis_name,
    dtype=jnp.dtype(read(config, "dtype", str)),
    rngs=nnx.Rngs(read(config, "seed", int)),
  )


def evaluate(
  p_eval_step: Callable[..., dict[str, jax.Array]],
  layout: parallel.Layout,
  state: Any,
  source: data.RecordSource,
  config: ml_collections.ConfigDict,
) -> dict[str, float]:
  """Mean eval metrics over ``source``: ``loss``, ``accuracy``, ``firing_rate/<layer>``.

  Args:
    p_eval_step: `eval_step` compiled by ``layout.compile``.
    layout: where the state lives and how batches are assembled.
    state: the state as the steps take it.
    source: the test split; this process reads its rows of every eval batch.
    config: the run's config (``eval_batch_size``, ``input_threads``, data keys).
  """
  batch_size = read(config, "eval_batch_size", int)
  local_batches = input_pipeline.batches(
    source,
    config,
    train=False,
    rows=layout.rows(batch_size),
    num_threads=read(config, "input_threads", int),
  )
  totals: dict[str, float] = collections.defaultdict(float)
  for local in local_batches:
    sums = layout.host(p_eval_step(state, layout.batch(local, batch_size)))
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
    ConfigError: a bad config (raised before anything is built or compiled), processes
      with different configs, or a workdir of a run with another config or unusable.
    NonFiniteError: non-finite values, as ``config.nonfinite`` says.
    TrainingInterrupted: SIGTERM; a checkpoint of the current step was saved first.
    KeyboardInterrupt: SIGINT (Ctrl-C); a checkpoint of the current step was saved first.
    checkpoints.CheckpointMismatchError: the workdir's checkpoints hold another model.
    checkpoints.CorruptCheckpointError: the workdir has checkpoints but none is intact.
  """
  start_time = time.time()
  agree_across_processes(config)
  validate_config(
    config, dataset_names=input_pipeline.dataset_names(), num_devices=jax.device_count()
  )
  checkpoints.guard_workdir(workdir, config)
  splits, info = input_pipeline.load(config)
  validate_input_shape(config, info.input_shape)
  layout = parallel.Layout(read(config, "parallel", str))
  per_epoch = input_pipeline.steps_per_epoch(splits["train"], config)
  total_steps = input_pipeline.total_steps(config, per_epoch)
  schedule = actions.Schedule(
    total_steps,
    read(config, "log_every_steps", int),
    per_epoch,
    read(config, "checkpoint_every_steps", int),
  )
  tx, loss_fn = make_tx(config, per_epoch, total_steps), make_loss(config)
  graphdefs, initial = create_train_state(
    create_model(config, info, bn_axis_name=layout.axis_name), tx
  )
  p_train_step = layout.compile(
    functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=loss_fn), donate=(0,)
  )
  p_eval_step = layout.compile(
    functools.partial(eval_step, graphdef=graphdefs.eval, loss_fn=loss_fn)
  )
  run_eval = functools.partial(evaluate, p_eval_step, layout, source=splits["test"], config=config)
  record = actions.Record()

  with contextlib.ExitStack() as stack:
    manager = stack.enter_context(
      checkpoints.checkpoint_manager(workdir, max_to_keep=read(config, "max_to_keep", int))
    )
    writer = stack.enter_context(contextlib.closing(actions.Writer(workdir)))
    hidden = not config.progress_bar or jax.process_index() > 0
    bar = stack.enter_context(tqdm.tqdm(total=total_steps, disable=hidden, desc="train"))
    signals = stack.enter_context(actions.StopSignals())
    periodic = [
      actions.Stop(signals, record),
      actions.Guard(config, layout, schedule, record, guarded_leaf_names(initial)),
      actions.Log(layout, schedule, record, writer, bar),
      actions.Evaluate(run_eval, schedule, record, writer),
      actions.Checkpoint(manager, layout, schedule, record),
      actions.Halt(record, str(manager.directory)),
    ]

    def restore() -> tuple[Any, int]:
      """The latest checkpoint (or the initial state) placed for the steps, and its step."""
      restored = checkpoints.restore_latest(manager, layout.abstract(initial))
      state, position = restored or (initial, DataPosition(0, 0))
      first = position.epoch * per_epoch + position.batch
      record.metrics.clear()
      bar.reset()
      bar.update(first)
      return layout.state(state), first

    state, first = restore()
    if first:
      actions.say(f"resuming at step {first} from {manager.directory}")
    else:
      writer.write_scalars(0, gate_means(state.params, layout.host))
    batch_size = read(config, "batch_size", int)
    while True:
      local = input_pipeline.train_stream(
        splits["train"],
        config,
        DataPosition(*divmod(first, per_epoch)),
        rows=layout.rows(batch_size),
        num_threads=read(config, "input_threads", int),
      )
      batches = _on_devices(local, layout, batch_size)
      try:
        state = _train(
          p_train_step, state, range(first + 1, total_steps + 1), batches, periodic, record
        )
        break
      except actions.RollBack:
        state, first = restore()
        actions.say(f"rolled back to step {first}")
    if not record.eval:  # nothing was left to train: evaluate the restored state
      record.eval = run_eval(state)
    final = layout.host(state)
    manager.wait_until_finished()
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
  steps: range,
  batches: Iterator[Any],
  periodic: Sequence[Callable[[int, Any], None]],
  record: actions.Record,
) -> Any:
  """Runs the train ``steps``, each followed by the ``periodic`` actions."""
  for step in steps:
    waited = time.perf_counter()
    batch = next(batches)
    record.input_wait_s += time.perf_counter() - waited
    state, metrics = p_train_step(state, batch)
    record.add(step, metrics)
    for action in periodic:
      action(step, state)
  return state


def _layer_rates(metrics: dict[str, float]) -> dict[str, float]:
  """``{layer: rate}`` from the ``firing_rate/<layer>`` metrics."""
  prefix = "firing_rate/"
  return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}
