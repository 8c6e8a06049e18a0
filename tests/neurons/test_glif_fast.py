"""GLIF's fast path (`glif_jax.neurons._glif_fast`): equal to autodiff of `run`-ning `glif_step`.

`glif`, `glif_f` and `glif_trace` run the hand-written backward pass; each test here
holds it to its contract against the step function looped or `run` with autodiff.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax import neurons
from tests.support.params import random_params

T, B, C = 6, 3, 4


def _loop_loss(p, x, state, cotangent, constants):
  """The loss of `test_glif_backward_equals_autodiff_of_the_step_loop`, by `glif_step`."""
  spikes = []
  for t in range(x.shape[0]):
    spike, state = neurons.glif_step(p, state, (x[t], p.conduct[t]), constants=constants)
    spikes.append(spike)
  return jnp.sum(jnp.stack(spikes) * cotangent) + jnp.sum(state.u**2) + jnp.sum(state.o)


@pytest.mark.parametrize(
  "constants, loop",
  [
    ({}, {}),
    ({"detach_reset": True}, {}),
    ({"gating": "hard"}, {}),
    ({}, {"unroll": 1}),
    ({}, {"remat": True}),
    ({"simplified": True}, {}),
  ],
  ids=["default", "detach", "hard", "rolled", "remat", "glif_f"],
)
def test_glif_backward_equals_autodiff_of_the_step_loop(constants, loop):
  """The hand-written backward pass against autodiff of `glif_step`, from a given state.

  The loss also uses the final state, so the cotangents of the membrane and of the
  initial state are checked too.
  """
  constants = neurons.GLIFConstants(**constants)
  keys = jax.random.split(jax.random.key(27), 4)
  p = random_params(keys[0])
  x = jax.random.uniform(keys[1], (T, B, C), minval=-0.5, maxval=1.5)
  state = neurons.GLIFState(
    jax.random.uniform(keys[2], (B, C)), jax.random.bernoulli(keys[3], 0.5, (B, C)).astype(float)
  )
  cotangent = jax.random.normal(keys[3], (T, B, C))

  def loss(p, x, state):
    spikes, final = neurons.glif(p, x, state, constants=constants, **loop)
    return jnp.sum(spikes * cotangent) + jnp.sum(final.u**2) + jnp.sum(final.o)

  expected = jax.grad(_loop_loss, argnums=(0, 1, 2))(p, x, state, cotangent, constants)
  actual = jax.grad(loss, argnums=(0, 1, 2))(p, x, state)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_glif_trace_gradients_equal_autodiff_of_run_trace():
  """Cotangents on every step's membrane: `glif_trace` against `run_trace(glif_step)`."""
  keys = jax.random.split(jax.random.key(30), 4)
  p = random_params(keys[0])
  x = jax.random.uniform(keys[1], (T, B, C), minval=-0.5, maxval=1.5)
  ct_spikes, ct_u = jax.random.normal(keys[2], (2, T, B, C))

  def loss(trace_fn, p, x):
    spikes, trace = trace_fn(p, x)
    return jnp.sum(spikes * ct_spikes) + jnp.sum(trace.u * ct_u)

  def by_step(p, x):
    state = neurons.GLIFState.zeros(x.shape[1:])
    return neurons.run_trace(neurons.glif_step, p, (x, p.conduct), state)

  actual = jax.grad(functools.partial(loss, neurons.glif_trace), argnums=(0, 1))(p, x)
  expected = jax.grad(functools.partial(loss, by_step), argnums=(0, 1))(p, x)
  chex.assert_trees_all_close(actual, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(neurons.glif_trace(p, x)[0], by_step(p, x)[0])


def test_glif_long_sequences_take_the_rolled_loop_with_the_same_gradients():
  T_long = 40  # > MAX_FULL_UNROLL: a rolled loop that recomputes the membrane
  p = random_params(jax.random.key(28), timesteps=T_long)
  x = jax.random.uniform(jax.random.key(29), (T_long, 2, C), maxval=1.5)
  grad = lambda **kw: jax.grad(lambda p, x: neurons.glif(p, x, **kw)[0].sum(), argnums=(0, 1))(p, x)
  for a, e in zip(jax.tree.leaves(grad()), jax.tree.leaves(grad(unroll=True, remat=False))):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_step_function_loop_equals_scan():
  p = random_params(jax.random.key(12))
  x = jax.random.uniform(jax.random.key(13), (T, B, C), maxval=1.5)
  state = neurons.GLIFState.zeros((B, C))
  spikes = []
  for t in range(T):
    spike, state = neurons.glif_step(p, state, (x[t], p.conduct[t]))
    spikes.append(spike)
  scanned, final = neurons.glif(p, x)
  np.testing.assert_array_equal(jnp.stack(spikes), scanned)
  chex.assert_trees_all_close(state, final, atol=1e-6)


@pytest.mark.parametrize("options", [dict(remat=True), dict(unroll=3), dict(unroll=True)])
def test_remat_and_unroll_change_nothing(options):
  p = random_params(jax.random.key(16))
  x = jax.random.uniform(jax.random.key(17), (T, B, C), maxval=1.5)
  loss = lambda p, x, **kw: jnp.sum(neurons.glif(p, x, **kw)[0] * jnp.arange(T)[:, None, None])
  expected = jax.grad(loss, argnums=(0, 1))(p, x)
  actual = jax.jit(jax.grad(lambda p, x: loss(p, x, **options), argnums=(0, 1)))(p, x)
  chex.assert_trees_all_close(actual, expected, atol=1e-5)
