"""Losses on time-major logits ``[T, B, classes]``.

- `mean_logits_cross_entropy`: the papers' default, cross-entropy of the readout (the mean
  over T of the logits).
- `tet_loss`: Temporal Efficient Training (Deng et al., ICLR 2022), cross-entropy of every
  time step's logits, averaged over T, with an optional MSE regulariser::

      L = (1 − λ) · mean_t CE(O_t, y) + λ · mean_t MSE(O_t, φ)

  where φ is a constant target for all logits (the TET authors use φ = 1, λ = 0.05 or
  smaller); λ = 0 is plain TET. Inference still reads out the mean over T of the logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float) -> jax.Array:
  """Per-example cross-entropy of ``logits [..., K]`` with integer ``labels [...]``."""
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def mean_logits_cross_entropy(
  logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0
) -> jax.Array:
  """Per-example cross-entropy ``[B]`` of the mean over T of ``logits [T, B, K]``.

  Args:
    logits: time-major logits ``[T, B, K]``.
    labels: integer labels ``[B]``.
    label_smoothing: ε of `optax.smooth_labels` (0: one-hot targets).

  Returns:
    The per-example losses ``[B]``.

  Example:
    >>> import jax.numpy as jnp
    >>> logits = jnp.array([[[2.0, 0.0]], [[0.0, 0.0]]])  # T=2, B=1: mean [1, 0]
    >>> float(mean_logits_cross_entropy(logits, jnp.array([0]))[0])  # log(1 + e^-1)
    0.31326...
  """
  return _cross_entropy(jnp.mean(logits, axis=0), labels, label_smoothing)


def tet_loss(
  logits: jax.Array,
  labels: jax.Array,
  *,
  label_smoothing: float = 0.0,
  mse_weight: float = 0.0,
  mse_target: float = 1.0,
) -> jax.Array:
  """Per-example TET loss ``[B]`` of ``logits [T, B, K]`` (see the module docstring).

  Args:
    logits: time-major logits ``[T, B, K]``.
    labels: integer labels ``[B]``.
    label_smoothing: ε of `optax.smooth_labels` in each time step's cross-entropy.
    mse_weight: λ, the weight of the MSE term (0: plain TET).
    mse_target: φ, the constant the MSE term pulls every logit towards.

  Returns:
    The per-example losses ``[B]``.
  """
  ce = jnp.mean(_cross_entropy(logits, labels[None], label_smoothing), axis=0)
  if not mse_weight:
    return ce
  mse = jnp.mean(jnp.square(logits - mse_target), axis=(0, 2))
  return (1.0 - mse_weight) * ce + mse_weight * mse
