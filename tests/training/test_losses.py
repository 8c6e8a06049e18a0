"""Losses against hand-computed values on a tiny example."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax.training import mean_logits_cross_entropy, tet_loss

# T = 2, B = 1, K = 2: per-step logits [2, 0] and [0, 0]; label 0.
LOGITS = jnp.array([[[2.0, 0.0]], [[0.0, 0.0]]])
LABELS = jnp.array([0])


def test_mean_logits_cross_entropy():
  # mean over T: [1, 0]; CE = -log softmax(1, 0)[0] = log(1 + e^-1).
  got = mean_logits_cross_entropy(LOGITS, LABELS)
  np.testing.assert_allclose(got, [math.log1p(math.exp(-1))], rtol=1e-6)


def test_label_smoothing():
  # targets [1 - ε/2, ε/2]: CE = -(1 - ε/2) log p0 - ε/2 log p1.
  eps = 0.2
  p0 = 1 / (1 + math.exp(-1))
  expected = -(1 - eps / 2) * math.log(p0) - eps / 2 * math.log(1 - p0)
  got = mean_logits_cross_entropy(LOGITS, LABELS, label_smoothing=eps)
  np.testing.assert_allclose(got, [expected], rtol=1e-6)


def test_tet_is_mean_of_per_step_cross_entropy():
  # step 1: log(1 + e^-2); step 2: log 2.
  expected = (math.log1p(math.exp(-2)) + math.log(2)) / 2
  np.testing.assert_allclose(tet_loss(LOGITS, LABELS), [expected], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.25, 1.0])
def test_tet_mse_term(lam):
  ce = (math.log1p(math.exp(-2)) + math.log(2)) / 2
  mse = ((2 - 1) ** 2 + 1 + 1 + 1) / 4  # logits [2, 0, 0, 0] against φ = 1
  got = tet_loss(LOGITS, LABELS, mse_weight=lam, mse_target=1.0)
  np.testing.assert_allclose(got, [(1 - lam) * ce + lam * mse], rtol=1e-6)


def test_losses_are_per_example():
  logits = jnp.zeros((3, 5, 4))
  labels = jnp.arange(5) % 4
  assert mean_logits_cross_entropy(logits, labels).shape == (5,)
  np.testing.assert_allclose(tet_loss(logits, labels), np.full(5, math.log(4)), rtol=1e-6)
