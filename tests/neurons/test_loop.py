"""`neurons.run` / `run_trace`: one time loop for every neuron, a user's own included."""

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax import neurons, surrogates
from tests.support.params import random_params

T, B, C = 8, 3, 4


class ALIFParams(NamedTuple):
  """An adaptive-threshold LIF of the user's own: learnable decay and threshold jump."""

  tau: jax.Array  # membrane time constant
  jump: jax.Array  # threshold increase per spike


class ALIFState(NamedTuple):
  v: jax.Array
  th: jax.Array


def alif_step(params, state, x_t, *, spike_fn=surrogates.sigmoid(4.0)):
  """H = V + (X − V)/τ; S = Θ(H − th); V = H·(1 − S); th relaxes to 1 and jumps on spikes."""
  h = state.v + (x_t - state.v) / params.tau
  spike = spike_fn(h - state.th, inclusive=True)
  th = 1.0 + 0.8 * (state.th - 1.0) + params.jump * spike
  return spike, ALIFState(h * (1 - spike), th)


def python_loop(step, params, x, state):
  spikes, states = [], []
  for t in range(x.shape[0]):
    spike, state = step(params, state, x[t])
    spikes.append(spike)
    states.append(state)
  return jnp.stack(spikes), jax.tree.map(lambda *a: jnp.stack(a), *states)


PARAMS = ALIFParams(jnp.float32(2.0), jnp.float32(0.4))


def _x_and_state():
  x = jax.random.uniform(jax.random.key(0), (T, B, C), maxval=2.5)
  return x, ALIFState(jnp.zeros((B, C)), jnp.ones((B, C)))


@pytest.mark.parametrize(
  "loop",
  [{}, {"unroll": 1}, {"unroll": 3}],
  ids=["default", "rolled", "3"],
)
def test_users_adaptive_lif_equals_a_python_loop(loop):
  x, state = _x_and_state()
  spikes, trace = python_loop(alif_step, PARAMS, x, state)
  assert 0 < spikes.mean() < 1 and jnp.any(trace.th > 1.2)  # the threshold adapts
  run_spikes, final = neurons.run(alif_step, PARAMS, x, state, **loop)
  np.testing.assert_array_equal(run_spikes, spikes)
  chex.assert_trees_all_close(final, jax.tree.map(lambda a: a[-1], trace), atol=1e-6)
  trace_spikes, run_trace = neurons.run_trace(alif_step, PARAMS, x, state, **loop)
  np.testing.assert_array_equal(trace_spikes, spikes)
  chex.assert_trees_all_close(run_trace, trace, atol=1e-6)

  def loss(run_fn, p, x):
    return jnp.sum(run_fn(alif_step, p, x, state)[0] * jnp.arange(T)[:, None, None])

  expected = jax.grad(functools.partial(loss, python_loop), argnums=(0, 1))(PARAMS, x)
  actual = jax.jit(jax.grad(functools.partial(loss, neurons.run), argnums=(0, 1)))(PARAMS, x)
  chex.assert_trees_all_close(actual, expected, rtol=1e-5, atol=1e-6)
  assert jnp.all(jnp.isfinite(actual[0].tau)) and actual[0].tau != 0


def test_run_slices_a_pytree_input_glif_by_its_step():
  p = random_params(jax.random.key(1), channels=C, timesteps=T)
  x = jax.random.uniform(jax.random.key(2), (T, B, C), maxval=1.5)
  state = neurons.GLIFState.zeros((B, C))
  spikes, final = neurons.run(neurons.glif_step, p, (x, p.conduct), state)
  fast, fast_final = neurons.glif(p, x)
  np.testing.assert_array_equal(spikes, fast)
  chex.assert_trees_all_close(final, fast_final, atol=1e-6)


@pytest.mark.parametrize("which", ["lif", "plif", "klif"])
def test_layer_functions_are_run_of_their_step(which):
  x = jax.random.uniform(jax.random.key(3), (T, B, C), maxval=2.0)
  constants = neurons.LIFConstants(tau=3.0, v_reset=None)
  params, layer, step = {
    "lif": (None, lambda x, **kw: neurons.lif(x, **kw), neurons.lif_step),
    "plif": (
      neurons.plif_params(3.0, C),
      functools.partial(neurons.plif, neurons.plif_params(3.0, C)),
      neurons.lif_step,
    ),
    "klif": (
      neurons.klif_params(1.3),
      functools.partial(neurons.klif, neurons.klif_params(1.3)),
      neurons.klif_step,
    ),
  }[which]
  state = neurons.LIFState.zeros((B, C))
  expected = python_loop(functools.partial(step, constants=constants), params, x, state)
  spikes, final = layer(x, constants=constants)
  np.testing.assert_array_equal(spikes, expected[0])
  np.testing.assert_allclose(final.v, expected[1].v[-1], atol=1e-6)


def test_constants_are_hashable_static_jit_arguments():
  assert hash(neurons.LIFConstants()) == hash(neurons.LIFConstants())
  assert neurons.GLIFConstants(gating="hard") == neurons.GLIFConstants(gating="hard")
  x = jax.random.uniform(jax.random.key(4), (T, B, C), maxval=2.0)
  lif = jax.jit(neurons.lif, static_argnames="constants")
  c = neurons.LIFConstants(tau=3.0)
  np.testing.assert_array_equal(lif(x, constants=c)[0], neurons.lif(x, constants=c)[0])


@pytest.mark.parametrize(
  "call, error, words",
  [
    (lambda: neurons.LIFConstants(tau=-1.0).validated(), ValueError, ["tau", "> 0", "-1.0"]),
    (
      lambda: neurons.GLIFConstants(gating="fuzzy").validated(),
      ValueError,
      ["('soft', 'hard', 'static')", "'fuzzy'"],
    ),
    (
      lambda: neurons.lif(jnp.ones((T, C)), constants=neurons.GLIFConstants()),
      TypeError,
      ["LIFConstants", "GLIFConstants"],
    ),
    (
      lambda: neurons.lif(jnp.ones((T, C)), constants=neurons.LIFConstants(scale_reset=True)),
      ValueError,
      ["scale_reset", "KLIF"],
    ),
    (
      lambda: neurons.glif_step(
        neurons.glif_params(C, 1, gate_init="fixed"), neurons.GLIFState.zeros((C,)), jnp.ones(C)
      ),
      TypeError,
      ["(X_t, G_t)", "ArrayImpl"],
    ),
    (
      lambda: neurons.run(alif_step, PARAMS, (jnp.ones((T, C)), jnp.ones((T + 1, C))), None),
      ValueError,
      ["same T", "[8, 9]"],
    ),
  ],
  ids=["tau", "gating", "family", "scale-reset", "glif-pair", "T-mismatch"],
)
def test_bad_constants_and_inputs_raise_clear_errors(call, error, words):
  with pytest.raises(error) as info:
    call()
  for word in words:
    assert word in str(info.value)
