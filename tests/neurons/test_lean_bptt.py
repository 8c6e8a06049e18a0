"""The lean backward pass of `neurons.run`: gradients of plain autodiff, only inputs kept.

For every neuron step (GLIF, GLIF_f, KLIF, LIF, PLIF and the own-neuron tutorial's
adaptive LIF) the engine's gradients are compared with autodiff of a plain `jax.lax.scan`
of the same step (no custom VJP), to parameters, input and initial state, under `jax.jit`,
`jax.vmap`, `jax.checkpoint` and with bfloat16 inputs.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax import neurons
from glif_jax.neurons._loop import after
from tests.support.alif import alif_params, alif_rest, alif_step
from tests.support.params import random_params

T, B, C = 6, 3, 4
KEYS = jax.random.split(jax.random.key(24), 4)
X = jax.random.uniform(KEYS[0], (T, B, C), minval=-0.5, maxval=2.5)
CT_SPIKES = jax.random.normal(KEYS[1], (T, B, C))
LIF = neurons.LIFConstants(tau=3.0, v_reset=None)


def _glif_case(constants):
  p = random_params(KEYS[2], channels=C, timesteps=T)
  state = neurons.GLIFState(
    jax.random.uniform(KEYS[3], (B, C)), jax.random.bernoulli(KEYS[3], 0.5, (B, C)).astype(float)
  )
  step = functools.partial(neurons.glif_step, constants=constants)
  return step, p, lambda x, p: (x, p.conduct), state


def _lif_case(step, params, constants=LIF):
  state = neurons.LIFState(jax.random.uniform(KEYS[3], (B, C), maxval=0.5))
  return functools.partial(step, constants=constants), params, lambda x, p: x, state


CASES = {
  "glif": lambda: _glif_case(neurons.GLIFConstants()),
  "glif-hard-detached": lambda: _glif_case(neurons.GLIFConstants(gating="hard", detach_reset=True)),
  "glif_f": lambda: _glif_case(neurons.GLIFConstants(simplified=True)),
  "klif": lambda: _lif_case(neurons.klif_step, neurons.klif_params(1.3, C)),
  "lif": lambda: _lif_case(neurons.lif_step, None, neurons.LIFConstants()),
  "plif": lambda: _lif_case(neurons.lif_step, neurons.plif_params(3.0, C)),
  "alif": lambda: (alif_step, alif_params(channels=C), lambda x, p: x, alif_rest((B, C))),
}


def plain_scan(step, params, x, state):
  """The step in a `jax.lax.scan`, differentiated by autodiff: the reference."""
  final, spikes = jax.lax.scan(lambda s, x_t: step(params, s, x_t)[::-1], state, x)
  return spikes, final


def _loss(runner, step, inputs, params, x, state):
  spikes, final = runner(step, params, inputs(x, params), state)
  return jnp.sum(spikes * CT_SPIKES) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))


def _grads(runner, case, transform=lambda f: f):
  step, params, inputs, state = case
  loss = functools.partial(_loss, runner, step, inputs)
  return transform(jax.grad(loss, argnums=(0, 1, 2)))(params, X, state)


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_equal_autodiff_of_a_plain_scan(name):
  case = CASES[name]()
  expected = _grads(plain_scan, case)
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(expected))
  chex.assert_trees_all_close(_grads(neurons.run, case, jax.jit), expected, atol=1e-6, rtol=1e-6)
  rolled = functools.partial(neurons.run, unroll=1)
  chex.assert_trees_all_close(_grads(rolled, case), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["glif", "klif", "alif"])
def test_trace_gradients_equal_autodiff(name):
  step, params, inputs, state = CASES[name]()
  ct_trace = jax.tree.map(lambda s: jax.random.normal(KEYS[2], (T, *s.shape)), state)

  def loss(trace_fn, params, x):
    spikes, trace = trace_fn(step, params, inputs(x, params), state)
    leaves = zip(jax.tree.leaves(trace), jax.tree.leaves(ct_trace))
    return jnp.sum(spikes * CT_SPIKES) + sum(jnp.sum(a * b) for a, b in leaves)

  def scan_trace(step, params, x, state):
    def body(s, x_t):
      spike, s = step(params, s, x_t)
      return s, (spike, s)

    return jax.lax.scan(body, state, x)[1]

  expected = jax.grad(functools.partial(loss, scan_trace), argnums=(0, 1))(params, X)
  actual = jax.grad(functools.partial(loss, neurons.run_trace), argnums=(0, 1))(params, X)
  chex.assert_trees_all_close(actual, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["glif", "plif", "alif"])
def test_under_vmap_and_checkpoint(name):
  """A batch of inputs mapped with `jax.vmap`, inside `jax.checkpoint`, as plain autodiff."""
  step, params, inputs, state = CASES[name]()
  xs = jnp.stack([X, X[::-1]])

  def grads(runner):
    loss = jax.checkpoint(functools.partial(_loss, runner, step, inputs))
    per_x = jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(None, 0, None))
    return jax.jit(per_x)(params, xs, state)

  chex.assert_trees_all_close(grads(neurons.run), grads(plain_scan), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["glif", "klif", "alif"])
def test_bfloat16_inputs(name):
  """bfloat16 input and state: the same spikes and gradients as autodiff, in bfloat16."""
  step, params, inputs, state = CASES[name]()
  state = jax.tree.map(lambda a: a.astype(jnp.bfloat16), state)
  if name == "alif":  # the user's step computes in its parameters' dtype
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
  x = X.astype(jnp.bfloat16)

  def grads(runner):
    loss = lambda p, x: jnp.sum(runner(step, p, inputs(x, p), state)[0] * CT_SPIKES)
    return jax.grad(loss, argnums=(0, 1))(params, x)

  actual, expected = grads(neurons.run), grads(plain_scan)
  assert actual[1].dtype == jnp.bfloat16
  # bfloat16 rounds differently when XLA fuses a sum differently: within its 8 bits.
  chex.assert_trees_all_close(actual, expected, atol=2e-2, rtol=2e-2)
  spikes = neurons.run(step, params, inputs(x, params), state)[0]
  np.testing.assert_array_equal(spikes, plain_scan(step, params, inputs(x, params), state)[0])


def _residual_bytes(fn, *args):
  residuals = jax.eval_shape(lambda *a: jax.vjp(fn, *a)[1], *args)
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(residuals))


@pytest.mark.parametrize("name", ["glif", "klif", "alif"])
def test_the_forward_keeps_only_its_arguments(name):
  """What the backward pass keeps: ``params``, ``x`` and the initial state, not T states."""
  step, params, inputs, state = CASES[name]()
  x = inputs(X, params)
  kept = _residual_bytes(lambda p, x, s: neurons.run(step, p, x, s), params, x, state)
  arguments = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves((params, x, state)))
  assert kept == arguments
  assert _residual_bytes(lambda p, x, s: plain_scan(step, p, x, s), params, x, state) > 2 * kept


def test_a_long_sequence_takes_the_rolled_loop():
  """T = 40 > MAX_FULL_UNROLL: a rolled scan, with the gradients of the unrolled loop."""
  x = jnp.tile(X, (7, 1, 1))[:40]
  step = functools.partial(neurons.klif_step, constants=LIF)
  state = neurons.LIFState.zeros((B, C))
  grad = lambda **kw: jax.grad(
    lambda p, x: jnp.sum(neurons.run(step, p, x, state, **kw)[0] ** 2), argnums=(0, 1)
  )(neurons.klif_params(1.3, C), x)
  assert "scan" in str(
    jax.make_jaxpr(lambda x: neurons.run(step, neurons.klif_params(), x, state))(x)
  )
  chex.assert_trees_all_close(grad(), grad(unroll=True), atol=1e-6, rtol=1e-6)


def test_zero_time_steps_are_refused():
  with pytest.raises(ValueError, match="at least one time step, got T = 0"):
    neurons.lif(jnp.ones((0, B, C)))


@pytest.mark.parametrize("signal", [1.5, 0.0, np.inf, np.nan])
def test_after_returns_its_values_whatever_the_signal(signal):
  """The backward's tie to the cotangent adds an exact zero: values bit for bit (int8
  spikes too), a NaN or inf cotangent included; only -0.0 turns +0.0."""
  floats = jnp.array([1.25, -3.0, 1e-30, -0.0], jnp.float32)
  spikes = jnp.array([0, 1, 1, 0], jnp.int8)
  out_floats, out_spikes = jax.jit(after)((floats, spikes), jnp.full((2, 3), signal))
  np.testing.assert_array_equal(np.asarray(out_floats), np.float32([1.25, -3.0, 1e-30, 0.0]))
  assert not np.signbit(np.asarray(out_floats)[-1])
  assert out_spikes.dtype == jnp.int8
  np.testing.assert_array_equal(np.asarray(out_spikes), [0, 1, 1, 0])
