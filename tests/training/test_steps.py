"""The eval step: metrics over the real examples of a padded batch only."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from glif_jax import nn
from glif_jax.training import create_train_state, eval_step
from glif_jax.training.losses import mean_logits_cross_entropy
from glif_jax.training.steps import _apply
from tests.support.models import small_model

T = 4


class _ConstantInputLIF(nnx.Module):
  """``x [B, 1]`` held for T steps into a LIF; logits ``[T, B, 2]``: (spike, 0)."""

  def __init__(self):
    self.neuron = nn.LIF()  # τ = 2, V_th = 1, hard reset to 0, v += (x - v) / τ

  def __call__(self, x):
    spikes, _ = self.neuron(jnp.broadcast_to(x, (T, *x.shape)))
    return jnp.concatenate([spikes, jnp.zeros_like(spikes)], axis=-1)


def _eval(model, batch):
  graphdefs, state = create_train_state(model, optax.sgd(0.1))
  step = jax.jit(
    functools.partial(eval_step, graphdef=graphdefs.eval, loss_fn=mean_logits_cross_entropy)
  )(state, batch)
  return {k: float(v) for k, v in step.items()}


def test_eval_firing_rates_count_only_the_real_examples():
  # Input 10: v = 5 at every step, a spike each step, rate 1. Input 1.5: v = 0.75, 1.125
  # (spike, reset), 0.75, 1.125 (spike): rate 1/2. Input 0: rate 0. The fourth row is
  # padding (mask false) with input 10. Real examples: rates 1 + 1/2 + 0 = 1.5 over 3
  # (the whole batch's mean rate would give 2.5/4 per example, 1.875 in all). Logits
  # (mean over T) (rate, 0): label 0 is picked for rates 1 and 1/2 and for the tie at 0
  # (argmax takes the first), so with labels (0, 0, 1) 2 of 3 are correct.
  batch = {
    "image": jnp.array([[10.0], [1.5], [0.0], [10.0]]),
    "label": jnp.array([0, 0, 1, 0]),
    "mask": jnp.array([True, True, True, False]),
  }
  sums = _eval(_ConstantInputLIF(), batch)
  assert sums["count"] == 3 and sums["correct"] == 2
  assert sums["firing_rate/neuron"] == 1.5
  # CE of the mean logits (r, 0) at label 0: log(1 + e^-r); at label 1 with (0, 0): log 2.
  expected = np.log1p(np.exp(-1.0)) + np.log1p(np.exp(-0.5)) + np.log(2.0)
  np.testing.assert_allclose(sums["loss"], expected, rtol=1e-6)


def test_eval_runs_each_example_as_the_batched_model_does():
  model = small_model("cnn_small", num_classes=3, timesteps=2, width=2)
  images = jnp.asarray(np.random.default_rng(0).normal(size=(3, 8, 8, 1)), jnp.float32)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  apply = jax.jit(functools.partial(_apply, graphdef))
  batched, _, rates = apply(params, rest, images)
  sums = _eval(model, {"image": images, "label": jnp.zeros(3, jnp.int32)})
  one_by_one = [apply(params, rest, images[i : i + 1])[0] for i in range(3)]
  np.testing.assert_allclose(jnp.concatenate(one_by_one, axis=1), batched, rtol=1e-5, atol=1e-6)
  for name, rate in rates.items():  # no padding: the sum of per-example rates is 3 x the mean
    np.testing.assert_allclose(sums[name], 3 * float(rate), rtol=1e-5)
