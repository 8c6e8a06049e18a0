"""The train state and the pure train and eval steps.

The model is split once into a static graph and two pytrees: ``params`` (every
`nnx.Param`, neuron parameters included) and ``rest`` (tdBN running statistics). The
steps merge them back inside the traced function, so they are pure functions of pytrees
that `jax.jit` or `jax.pmap` can wrap; with ``axis_name`` set (under pmap or shard_map)
gradients and metrics are averaged over that axis, and a model built with
``bn_axis_name=axis_name`` averages its batch statistics over it too.

Batches are ``{"image", "label"[, "mask"]}`` with images ``[B, H, W, C]`` (static) or
batch-major event frames ``[B, T, H, W, C]``, which the steps make time-major.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx

LossFn = Callable[[jax.Array, jax.Array], jax.Array]
"""``(logits [T, B, K], labels [B]) -> per-example losses [B]``."""

MAX_LISTED = 5
"""Leaves named at the most in a message (non-finite or mismatching ones)."""
_EVENT_RANK = 5  # [B, T, H, W, C]
FIRING_RATE = "firing_rate/"
"""Prefix of the metrics of the steps that give a neuron layer's mean firing rate."""
FINITE = "guard/finite"
"""Metric of `train_step`: whether the step's values were finite and it was applied."""
FINITE_LEAVES = "guard/finite_leaves"
"""Metric of `train_step`: per guarded leaf (`guarded_leaf_names`), whether it was finite."""


class TrainState(NamedTuple):
  """Everything that changes during training; orbax saves it as it is.

  Attributes:
    step: the number of training batches consumed (int32 scalar); a step skipped for
      non-finite values counts, so ``step`` always names the next batch.
    params: the model's `nnx.Param` state.
    rest: the model's other state (tdBN running statistics).
    opt_state: the optax state.
  """

  step: jax.Array
  params: nnx.State
  rest: nnx.State
  opt_state: optax.OptState


class GraphDefs(NamedTuple):
  """The static model graphs: ``train`` (batch statistics) and ``eval`` (running averages)."""

  train: nnx.GraphDef
  eval: nnx.GraphDef


def create_train_state(
  model: nnx.Module, tx: optax.GradientTransformation
) -> tuple[GraphDefs, TrainState]:
  """Splits ``model`` into its graphs and a fresh `TrainState` at step 0.

  Args:
    model: the model; it is left in training mode.
    tx: the optimiser, initialised on the model's params.

  Returns:
    ``(graphdefs, state)``.
  """
  model.eval()
  eval_graphdef = nnx.graphdef(model)
  model.train()
  train_graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  state = TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  return GraphDefs(train_graphdef, eval_graphdef), state


def listed(items: Sequence[str], separator: str = ", ") -> str:
  """The first `MAX_LISTED` of ``items`` joined, and how many more there are."""
  more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
  return separator.join(items[:MAX_LISTED]) + more


def leaf_names(tree: Any) -> list[str]:
  """Dotted paths of the leaves of ``tree`` (orbax's names), in `jax.tree.leaves` order."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [jax.tree_util.keystr(path, simple=True, separator=".") for path, _ in flat]


def guarded_leaf_names(state: TrainState) -> list[str]:
  """Names of the leaves `FINITE_LEAVES` flags: ``params.<path>`` then ``rest.<path>``."""
  return leaf_names({"params": state.params, "rest": state.rest})


def _time_major(images: jax.Array) -> jax.Array:
  """Event frames ``[B, T, ...]`` -> ``[T, B, ...]``; static images are left alone."""
  return jnp.swapaxes(images, 0, 1) if images.ndim == _EVENT_RANK else images


def _firing_rates(intermediates: nnx.State) -> dict[str, jax.Array]:
  """``{"firing_rate/<layer path>": mean rate}`` from the sown per-channel rates."""
  flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(intermediates))[0]
  return {
    FIRING_RATE + jax.tree_util.keystr(path[:-1], simple=True, separator="."): jnp.mean(rate)
    for path, rate in flat
  }


def layer_rates(metrics: dict[str, float]) -> dict[str, float]:
  """``{layer: rate}`` from the `FIRING_RATE` metrics of the steps."""
  return {k.removeprefix(FIRING_RATE): v for k, v in metrics.items() if k.startswith(FIRING_RATE)}


def _apply(
  graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State, images: jax.Array
) -> tuple[jax.Array, nnx.State, dict[str, jax.Array]]:
  """Runs the model: ``(logits [T, B, K], new rest, firing rates)``."""
  model = nnx.merge(graphdef, params, rest, copy=True)
  logits, intermediates = nnx.capture(model, nnx.Intermediate)(_time_major(images))
  return logits, nnx.state(model, nnx.Not(nnx.Param)), _firing_rates(intermediates)


def _apply_per_example(
  graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State, images: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Runs the eval-mode model on each example alone: ``(logits [T, B, K], rates {name: [B]})``.

  In eval mode the examples do not interact (batch norm uses its running statistics), so
  the model is vmapped over the batch-major ``images [B, ...]``; the sown firing rates
  then come per example and can be masked.
  """

  def one(image: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    logits, _, rates = _apply(graphdef, params, rest, image[None])
    return logits[:, 0], rates

  logits, rates = jax.vmap(one)(images)
  return jnp.swapaxes(logits, 0, 1), rates


def _correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """1.0 where the readout (mean over T of the logits) picks the label, else 0.0: ``[B]``."""
  return (jnp.argmax(jnp.mean(logits, axis=0), axis=-1) == labels).astype(jnp.float32)


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  *,
  graphdef: nnx.GraphDef,
  tx: optax.GradientTransformation,
  loss_fn: LossFn,
  axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimiser step on ``batch``; bind the keyword arguments with `functools.partial`.

  Args:
    state: the current `TrainState`.
    batch: ``{"image", "label"}`` (see the module docstring).
    graphdef: the training-mode graph (`GraphDefs.train`).
    tx: the optimiser `state.opt_state` belongs to.
    loss_fn: per-example loss of time-major logits.
    axis_name: the pmap/shard_map axis to average gradients and metrics over (None: no
      averaging, for a single device or plain `jax.jit`).

  Returns:
    ``(new state, metrics)`` with metrics ``loss``, ``accuracy``, one
    ``firing_rate/<layer>`` (mean over channels, time and batch) per neuron layer, and
    the NaN/inf guard's `FINITE` (bool: the step was applied) and `FINITE_LEAVES` (bool
    per leaf of ``{"params": ..., "rest": ...}``, see `guarded_leaf_names`). A step with
    a non-finite loss, gradient or batch statistic (tdBN's or BN's) is not applied: the
    new state is ``state`` with ``step + 1``. With ``axis_name`` the decision is taken on
    the averaged loss and gradients and on every device's statistics, so all devices take
    the same one. (An update that overflows from finite gradients is not
    caught here but by the loop, which checks the state before saving it.)
  """

  def compute_loss(params):
    logits, rest, rates = _apply(graphdef, params, state.rest, batch["image"])
    return jnp.mean(loss_fn(logits, batch["label"])), (logits, rest, rates)

  (loss, (logits, rest, rates)), grads = jax.value_and_grad(compute_loss, has_aux=True)(
    state.params
  )
  metrics = {"loss": loss, "accuracy": jnp.mean(_correct(logits, batch["label"])), **rates}
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    metrics = jax.lax.pmean(metrics, axis_name)
  finite_leaves = _finite_leaves(grads, rest, axis_name)
  finite = jnp.isfinite(metrics["loss"]) & jnp.all(finite_leaves)  # the same on every device

  def update() -> TrainState:
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = cast(nnx.State, optax.apply_updates(state.params, updates))  # the same tree type
    return TrainState(state.step, params, rest, opt_state)

  # A cond, not a select of new and old state: the update runs in place only when applied,
  # where a select would cost a pass over the whole state every step.
  new = jax.lax.cond(finite, update, lambda: state)
  metrics = {**metrics, FINITE: finite, FINITE_LEAVES: finite_leaves}
  return new._replace(step=state.step + 1), metrics


def _finite_leaves(grads: nnx.State, rest: nnx.State, axis_name: str | None) -> jax.Array:
  """Bool per leaf of ``{"params": grads, "rest": rest}`` (in `jax.tree.leaves` order):
  whether the (averaged) gradient, and the new batch statistic on every device of
  ``axis_name``, is all finite."""
  leaves = jax.tree.leaves({"params": grads, "rest": rest})
  finite = jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])
  if axis_name is None:
    return finite
  return jax.lax.pmin(finite.astype(jnp.int32), axis_name).astype(bool)  # batch statistics


def eval_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  *,
  graphdef: nnx.GraphDef,
  loss_fn: LossFn,
  axis_name: str | None = None,
) -> dict[str, jax.Array]:
  """Sums of the eval metrics over the valid examples of ``batch``.

  Args:
    state: the `TrainState` to evaluate.
    batch: ``{"image", "label"}`` and optionally ``"mask"`` (1 for real examples, 0 for
      padding; padding is not counted).
    graphdef: the eval-mode graph (`GraphDefs.eval`).
    loss_fn: per-example loss of time-major logits.
    axis_name: the pmap/shard_map axis to sum over (None: no summing).

  Returns:
    ``count`` (valid examples), and ``loss``, ``correct`` and ``firing_rate/<layer>`` (the
    example's mean rate over channels, time and space) summed over them; divide by the
    total count for means.
  """
  logits, rates = _apply_per_example(graphdef, state.params, state.rest, batch["image"])
  mask = batch.get("mask", jnp.ones_like(batch["label"])).astype(jnp.float32)
  sums = {
    "count": jnp.sum(mask),
    "loss": jnp.sum(mask * loss_fn(logits, batch["label"])),
    "correct": jnp.sum(mask * _correct(logits, batch["label"])),
    **{name: jnp.sum(mask * rate) for name, rate in rates.items()},
  }
  return sums if axis_name is None else jax.lax.psum(sums, axis_name)
