"""What a config builds, once: data, device layout, model, train state and compiled steps.

`build` serves training (`glif_jax.training.train_and_evaluate`) and evaluation
(``python -m train.evaluate``) alike::

  experiment = build(config, workdir)
  state = experiment.layout.state(experiment.initial)
  state, metrics = experiment.train_step(state, next(experiment.train_batches(0)))
  print(experiment.evaluate(state)["accuracy"])
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from glif_jax import data, models
from glif_jax.training import checkpoints, input_pipeline, losses, optim, parallel
from glif_jax.training.checkpoints import DataPosition
from glif_jax.training.config import Config, ConfigError, agree_across_processes, validate_config
from glif_jax.training.steps import (
  GraphDefs,
  LossFn,
  TrainState,
  create_train_state,
  eval_step,
  guarded_leaf_names,
)
from glif_jax.training.steps import train_step as _train_step

DEVICE_PREFETCH = 2  # global training batches placed on the devices ahead of the step


def make_loss(config: Config) -> LossFn:
  """The per-example loss ``config.loss`` names, with its options bound."""
  label_smoothing = config.label_smoothing
  if config.loss == "tet":
    return functools.partial(
      losses.tet_loss,
      label_smoothing=label_smoothing,
      mse_weight=config.tet_mse_weight,
      mse_target=config.tet_mse_target,
    )
  return functools.partial(losses.mean_logits_cross_entropy, label_smoothing=label_smoothing)


def make_tx(config: Config, steps_per_epoch: int, total_steps: int) -> optax.GradientTransformation:
  """The optimiser of ``config`` with its learning-rate schedule over ``total_steps``."""
  schedule = optim.learning_rate_schedule(
    config.learning_rate,
    total_steps=total_steps,
    warmup_steps=int(config.warmup_epochs * steps_per_epoch),
    steps_per_epoch=steps_per_epoch,
    cosine_period_epochs=config.cosine_period_epochs,
  )
  return optim.make_optimizer(
    optimizer=config.optimizer,
    learning_rate=schedule,
    momentum=config.momentum,
    weight_decay=config.weight_decay,
    neuron_lr_scale=config.neuron_lr_scale,
    gate_lr_scale=config.gate_lr_scale,
    grad_clip_norm=config.grad_clip_norm,
  )


def create_model(
  config: Config,
  info: data.DatasetInfo,
  *,
  bn_axis_name: str | None = None,
) -> nnx.Module:
  """The model of ``config`` for data described by ``info``.

  ``bn_axis_name``: the pmap axis tdBN averages its batch statistics over (None under
  jit, where the global batch is one array).
  """
  # The config.json of a run from before the key "norm" has none.
  norm = getattr(config, "norm", None)
  try:
    return _create(config, info, norm, bn_axis_name)
  except ValueError as err:  # the models check their arguments: bad options of the config
    raise ConfigError(f"the config's model cannot be built: {err}") from err


def _create(
  config: Config,
  info: data.DatasetInfo,
  norm: str | None,
  bn_axis_name: str | None,
) -> nnx.Module:
  return models.create(
    config.model,
    num_classes=info.num_classes,
    timesteps=config.timesteps,
    in_channels=info.input_shape[-1],
    neuron=config.neuron,
    neuron_options=dict(config.neuron_options),
    norm=norm,
    width=config.width,
    input_size=info.input_shape[-2],
    remat=config.remat,
    bn_axis_name=bn_axis_name,
    dtype=jnp.dtype(config.dtype),
    rngs=nnx.Rngs(config.seed),
  )


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A config's run, built: see `build`.

  Attributes:
    config: the config it was built from, checked and frozen (`validate_config`).
    splits: ``{"train", "test"}`` record sources of ``config.dataset``.
    info: the data set's `glif_jax.data.DatasetInfo`.
    layout: where the state lives and how batches are assembled (``config.parallel``).
    steps_per_epoch: training steps in one epoch (the remainder is dropped).
    total_steps: the run's training steps.
    model: the model the state was made from (in training mode; its weights are those
      of ``initial``).
    graphdefs: the model's static graphs.
    initial: the `TrainState` at step 0, on the host.
    guarded_names: the names of the leaves the train step checks for NaN/inf
      (`steps.guarded_leaf_names`).
    train_step: `glif_jax.training.train_step` compiled by ``layout`` (donates the state).
    eval_step: `glif_jax.training.eval_step` compiled by ``layout``.
  """

  config: Config
  splits: dict[str, data.RecordSource]
  info: data.DatasetInfo
  layout: parallel.Layout
  steps_per_epoch: int
  total_steps: int
  model: nnx.Module
  graphdefs: GraphDefs
  initial: TrainState
  guarded_names: list[str]
  train_step: Callable[..., tuple[Any, dict[str, jax.Array]]]
  eval_step: Callable[..., dict[str, jax.Array]]

  def restore(self, manager: ocp.CheckpointManager) -> tuple[Any, int]:
    """The latest intact checkpoint of ``manager`` (or the initial state), placed for the
    steps, and the step it is after (`checkpoints.restore_latest`)."""
    target = self.layout.abstract(self.initial)
    restored = checkpoints.restore_latest(manager, target, steps_per_epoch=self.steps_per_epoch)
    state, position = restored or (self.initial, DataPosition(0, 0))
    return self.layout.state(state), position.epoch * self.steps_per_epoch + position.batch

  def train_batches(self, step: int) -> Iterator[Any]:
    """The global training batches after ``step``, epoch after epoch, from this process's
    rows, placed on the devices `DEVICE_PREFETCH` steps ahead."""
    batch_size = self.config.batch_size
    local_batches = input_pipeline.train_stream(
      self.splits["train"],
      self.config,
      DataPosition(*divmod(step, self.steps_per_epoch)),
      rows=self.layout.rows(batch_size),
      num_threads=self.config.input_threads,
    )
    ahead: collections.deque = collections.deque()
    for local in local_batches:
      ahead.append(self.layout.batch(local, batch_size))
      if len(ahead) > DEVICE_PREFETCH:
        yield ahead.popleft()
    yield from ahead

  def evaluate(self, state: Any) -> dict[str, float]:
    """Mean eval metrics of ``state`` (as the steps take it) over the test split:
    ``loss``, ``accuracy``, ``firing_rate/<layer>``; this process reads its rows."""
    batch_size = input_pipeline.eval_batch_size(self.splits["test"], self.config)
    local_batches = input_pipeline.batches(
      self.splits["test"],
      self.config,
      train=False,
      rows=self.layout.rows(batch_size),
      num_threads=self.config.input_threads,
    )
    totals: dict[str, float] = collections.defaultdict(float)
    for local in local_batches:
      sums = self.layout.host(self.eval_step(state, self.layout.batch(local, batch_size)))
      for k, v in sums.items():
        totals[k] += float(np.sum(v))
    count = totals.pop("count")
    totals["accuracy"] = totals.pop("correct")
    return {k: v / count for k, v in totals.items()}


def build(
  config: ml_collections.ConfigDict,
  workdir: str | Path | None = None,
  *,
  load_weights: Callable[[nnx.Module], Any] | None = None,
) -> Experiment:
  """Checks ``config`` and builds its run; nothing is compiled before the checks pass.

  Every process calls it (the config is compared across processes first).

  Args:
    config: the training config (keys as in `glif_jax.training.default_config`).
    workdir: the run's directory: locked for this process (`checkpoints.lock_workdir`,
      held until `checkpoints.unlock_workdir` or the process ends), checked and given
      ``config.json`` (`checkpoints.guard_workdir`); None for none.
    load_weights: called on the freshly built model before the train state is made
      from it (e.g. to load the GLIF authors' weights).

  Raises:
    ConfigError: a bad config, processes with different configs, or an unusable workdir,
      one in use by another process or one of a run with another config.
  """
  agree_across_processes(config)
  names, devices = input_pipeline.dataset_names(), jax.device_count()
  checked = validate_config(config, dataset_names=names, num_devices=devices)
  splits, info = input_pipeline.load(checked)
  input_pipeline.check_sizes(splits, checked)
  per_epoch = input_pipeline.steps_per_epoch(splits["train"], checked)
  total_steps = input_pipeline.total_steps(checked, per_epoch)
  if workdir is not None:
    checkpoints.lock_workdir(workdir)  # the caller unlocks it (`checkpoints.unlock_workdir`)
    checkpoints.guard_workdir(workdir, checked)
  layout = parallel.Layout(checked.parallel)
  model = create_model(checked, info, bn_axis_name=layout.axis_name)
  if load_weights is not None:
    load_weights(model)
  loss_fn, tx = make_loss(checked), make_tx(checked, per_epoch, total_steps)
  graphdefs, initial = create_train_state(model, tx)
  train = functools.partial(_train_step, graphdef=graphdefs.train, tx=tx, loss_fn=loss_fn)
  evaluate = functools.partial(eval_step, graphdef=graphdefs.eval, loss_fn=loss_fn)
  return Experiment(
    config=checked,
    splits=splits,
    info=info,
    layout=layout,
    steps_per_epoch=per_epoch,
    total_steps=total_steps,
    model=model,
    graphdefs=graphdefs,
    initial=initial,
    guarded_names=guarded_leaf_names(initial),
    train_step=layout.compile(train, donate=(0,)),
    eval_step=layout.compile(evaluate),
  )
