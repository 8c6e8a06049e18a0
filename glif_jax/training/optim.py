"""The optimiser: optax compositions for synaptic weights and neuron parameters.

Following the GLIF authors' training code (``train.py``), the parameters split into three
groups:

- ``"weights"``: every `nnx.Param` that is not a neuron parameter (convolution and
  linear kernels, biases, tdBN scale and bias): base learning rate, with weight decay
  (L2 added to the gradient before the optimiser, as PyTorch's ``weight_decay``);
- ``"neuron"``: the other `glif_jax.nn.NeuronParam`s (τ, V_th, leak, V_reset,
  conductance, KLIF's k, PLIF's w): learning rate × ``neuron_lr_scale``, no weight decay;
- ``"gates"``: GLIF's gate logits α, β, γ: learning rate × ``neuron_lr_scale`` ×
  ``gate_lr_scale``, no weight decay (their ``--tunable-lif``: gates at lr / 10, the
  other neuron parameters at lr, on CIFAR).

All follow one schedule: optional linear warm-up from 0, then cosine decay to 0 at the
last step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from glif_jax.neurons import GATE_NAMES
from glif_jax.nn import NeuronParam

OPTIMIZERS = ("sgd", "adam")
WEIGHTS, NEURON, GATES = "weights", "neuron", "gates"


def _name(key: Any) -> str:
  """The name in a pytree path entry (a dict key or an attribute)."""
  return str(getattr(key, "key", getattr(key, "name", key)))


def param_labels(params: Any) -> Any:
  """``"gates"`` for each `NeuronParam` named α, β or γ, ``"neuron"`` for the other
  `NeuronParam`s of ``params`` and ``"weights"`` for the rest.

  Args:
    params: a pytree of `nnx.Variable`s, e.g. ``nnx.state(model, nnx.Param)``.

  Returns:
    The same structure with a label string in place of each variable.
  """

  def label(path: tuple[Any, ...], variable: nnx.Variable) -> str:
    if not isinstance(variable, NeuronParam):
      return WEIGHTS
    return GATES if _name(path[-1]) in GATE_NAMES else NEURON

  return jax.tree_util.tree_map_with_path(
    label, params, is_leaf=lambda x: isinstance(x, nnx.Variable)
  )


def learning_rate_schedule(
  base_lr: float,
  *,
  total_steps: int,
  warmup_steps: int = 0,
  steps_per_epoch: int = 1,
  cosine_period_epochs: float | None = None,
) -> optax.Schedule:
  """The learning rate per optimiser step.

  By default a linear warm-up from 0 over ``warmup_steps``, then a cosine decay to 0 at
  ``total_steps``. With ``cosine_period_epochs`` it is PyTorch's
  ``CosineAnnealingLR(T_max=cosine_period_epochs)`` stepped once per epoch, as the GLIF
  authors' CIFAR10-DVS script runs it: ``base_lr·(1 + cos(π·epoch/T_max))/2``, which
  rises again after ``T_max`` epochs when the run is longer.

  Args:
    base_lr: the peak learning rate.
    total_steps: the number of optimiser steps of the run.
    warmup_steps: steps of linear warm-up (0: none; not with ``cosine_period_epochs``).
    steps_per_epoch: optimiser steps per epoch (for ``cosine_period_epochs``).
    cosine_period_epochs: T_max of an epoch-stepped cosine annealing, or None.

  Returns:
    An optax schedule, step -> learning rate.
  """
  if cosine_period_epochs is not None:
    if warmup_steps > 0:
      raise ValueError(
        f"warm-up ({warmup_steps} steps) cannot be combined with cosine_period_epochs="
        f"{cosine_period_epochs!r}; set one of them"
      )

    def annealing(step: jax.typing.ArrayLike) -> jax.Array:
      epoch = jnp.floor_divide(step, steps_per_epoch)
      return base_lr * 0.5 * (1 + jnp.cos(jnp.pi * epoch / cosine_period_epochs))

    return annealing
  if warmup_steps <= 0:
    return optax.cosine_decay_schedule(base_lr, total_steps)
  return optax.warmup_cosine_decay_schedule(
    0.0, base_lr, warmup_steps=warmup_steps, decay_steps=max(total_steps, warmup_steps + 1)
  )


def _base(name: str, schedule: optax.Schedule, momentum: float) -> optax.GradientTransformation:
  if name == "sgd":
    return optax.sgd(schedule, momentum=momentum)
  if name == "adam":
    return optax.adam(schedule)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def make_optimizer(
  *,
  optimizer: str,
  learning_rate: optax.ScalarOrSchedule,
  momentum: float,
  weight_decay: float,
  neuron_lr_scale: float,
  gate_lr_scale: float = 1.0,
  grad_clip_norm: float | None = None,
) -> optax.GradientTransformation:
  """The three-group optimiser (see the module docstring).

  Args:
    optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
    learning_rate: a float or an optax schedule for the weights.
    momentum: SGD's momentum (ignored by Adam).
    weight_decay: L2 coefficient on the weights (not on neuron parameters).
    neuron_lr_scale: neuron parameters' learning rate over the weights'.
    gate_lr_scale: the gate logits' learning rate over the other neuron parameters'.
    grad_clip_norm: clip the global gradient norm to this before the update (None: off).

  Returns:
    An `optax.GradientTransformation` over pytrees of `nnx.Param` variables.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from glif_jax.nn import NeuronParam
    >>> params = {"w": nnx.Param(jnp.ones(2)), "tau": NeuronParam(jnp.ones(1))}
    >>> tx = make_optimizer(optimizer="sgd", learning_rate=1.0, momentum=0.0,
    ...                     weight_decay=0.5, neuron_lr_scale=0.1)
    >>> updates, _ = tx.update(params, tx.init(params), params)  # gradient = params
    >>> print(updates["w"][...], updates["tau"][...])
    [-1.5 -1.5] [-0.1]
  """
  schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)

  def scaled(scale: float) -> optax.Schedule:
    return lambda step: scale * schedule(step)

  tx = optax.multi_transform(
    {
      WEIGHTS: optax.chain(
        optax.add_decayed_weights(weight_decay), _base(optimizer, schedule, momentum)
      ),
      NEURON: _base(optimizer, scaled(neuron_lr_scale), momentum),
      GATES: _base(optimizer, scaled(neuron_lr_scale * gate_lr_scale), momentum),
    },
    param_labels,
  )
  if grad_clip_norm is None:
    return tx
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
