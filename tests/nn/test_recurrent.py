"""Recurrent spiking layers (`glif_jax.nn.recurrent`): spikes and gradients equal a plain
`jax.lax.scan` of the recurrence written here, for every neuron and a neuron of one's own;
with W_rec = 0 the layer is the feed-forward neuron; bad shapes are named."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import neurons
from glif_jax import nn as gnn
from tests.support.alif import alif_params, alif_rest, alif_step

T, B, F, C = 6, 3, 4, 5

NEURONS = {
  "glif": lambda: gnn.GLIF(C, T, rngs=nnx.Rngs(1)),
  "klif": lambda: gnn.KLIF(C, k=1.2),
  "plif": lambda: gnn.PLIF(C, init_tau=2.5),
  "lif": lambda: gnn.LIF(),
  "lif_scan": lambda: gnn.LIF(unroll=1),  # the rolled loop
}


def _inputs(key=0):
  kx, kp = jax.random.split(jax.random.key(key))
  return 1.5 * jax.random.normal(kx, (T, B, F)), jax.random.normal(kp, (T, B, C))


def _layer(name):
  layer = gnn.Recurrent(F, NEURONS[name](), channels=C, rngs=nnx.Rngs(2))
  layer.w_rec[...] = 0.8 * jax.random.normal(jax.random.key(3), (C, C))
  layer.bias[...] = 0.1 * jnp.arange(C)
  return layer


def _rest(neuron, shape):
  if isinstance(neuron, gnn.GLIF):
    return neurons.GLIFState.zeros(shape)
  return neurons.LIFState(jnp.full(shape, neuron.constants.v_reset))


def _neuron_step(neuron):
  if isinstance(neuron, gnn.GLIF):
    return functools.partial(neurons.glif_step, constants=neuron.constants)
  step = neurons.klif_step if isinstance(neuron, gnn.KLIF) else neurons.lif_step
  return functools.partial(step, constants=neuron.constants)


def scan_reference(step, neuron_params, w_in, w_rec, bias, x, state, conduct=None):
  """Spikes ``[T, B, C]`` of the recurrence, as one writes it with `jax.lax.scan`."""

  def body(carry, inputs):
    neuron_state, previous = carry
    current = inputs[0] @ w_in + previous @ w_rec + bias
    x_t = current if conduct is None else (current, inputs[1])
    spike, neuron_state = step(neuron_params, neuron_state, x_t)
    return (neuron_state, spike), spike

  xs = (x,) if conduct is None else (x, conduct)
  _, spikes = jax.lax.scan(body, (state, jnp.zeros((B, C))), xs)
  return spikes


def _layer_spikes_and_grads(layer, x, probe):
  graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

  def loss(params):
    spikes, _ = nnx.merge(graphdef, params, rest)(x)
    return jnp.sum(spikes * probe), spikes

  grads, spikes = jax.grad(loss, has_aux=True)(params)
  return spikes, nnx.to_pure_dict(grads)


@pytest.mark.parametrize("name", NEURONS)
def test_spikes_and_gradients_equal_a_plain_scan(name):
  x, probe = _inputs()
  layer = _layer(name)
  spikes, grads = _layer_spikes_and_grads(layer, x, probe)

  neuron = layer.neuron
  conduct = neuron.params.conduct if isinstance(neuron, gnn.GLIF) else None

  def reference_loss(neuron_params, w_in, w_rec, bias):
    state = _rest(neuron, (B, C))
    spikes = scan_reference(
      _neuron_step(neuron),
      neuron_params,
      w_in,
      w_rec,
      bias,
      x,
      state,
      (None if conduct is None else neuron_params.conduct),
    )
    return jnp.sum(spikes * probe), spikes

  weights = (neuron.params, layer.w_in.kernel[...], layer.w_rec[...], layer.bias[...])
  expected_grads, expected = jax.grad(reference_loss, argnums=(0, 1, 2, 3), has_aux=True)(*weights)
  np.testing.assert_array_equal(spikes, expected)
  assert 0.1 < float(jnp.mean(spikes)) < 0.9  # a mix of spikes and silence: the test can fail
  g_neuron, g_in, g_rec, g_bias = expected_grads
  np.testing.assert_allclose(grads["w_in"]["kernel"], g_in, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grads["w_rec"], g_rec, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grads["bias"], g_bias, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(g_rec).max()) > 0  # the gradient reaches the recurrent weights
  for field, value in (g_neuron._asdict() if g_neuron is not None else {}).items():
    np.testing.assert_allclose(grads["neuron"][field], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NEURONS)
def test_without_feedback_it_is_the_feed_forward_neuron(name):
  x, probe = _inputs(1)
  layer = _layer(name)
  with_feedback, _ = layer(x)
  layer.w_rec[...] = jnp.zeros((C, C))
  layer.bias[...] = jnp.zeros(C)
  spikes, grads = _layer_spikes_and_grads(layer, x, probe)
  current = x @ layer.w_in.kernel[...]
  graphdef, params, rest = nnx.split(layer.neuron, nnx.Param, ...)

  def neuron_loss(params):
    spikes, _ = nnx.merge(graphdef, params, rest)(current)
    return jnp.sum(spikes * probe), spikes

  neuron_grads, expected = jax.grad(neuron_loss, has_aux=True)(params)
  np.testing.assert_array_equal(spikes, expected)
  assert not np.array_equal(with_feedback, expected)  # the feedback did change the spikes
  jax.tree.map(
    functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
    grads.get("neuron", {}),  # LIF has no parameters
    nnx.to_pure_dict(neuron_grads),
  )


def test_a_neuron_of_ones_own_runs_recurrently():
  x, probe = _inputs(2)
  w_in = 0.7 * jax.random.normal(jax.random.key(4), (F, C))
  w_rec = jax.random.normal(jax.random.key(5), (C, C))
  p = alif_params(channels=C)
  state = gnn.RecurrentState(alif_rest((B, C)), jnp.zeros((B, C)))
  step = gnn.recurrent_step(alif_step)

  def loss(p, w_rec):
    spikes, _ = neurons.run(step, gnn.RecurrentParams(p, w_rec), x @ w_in, state)
    return jnp.sum(spikes * probe), spikes

  def reference_loss(p, w_rec):
    spikes = scan_reference(alif_step, p, w_in, w_rec, 0.0, x, alif_rest((B, C)))
    return jnp.sum(spikes * probe), spikes

  grads, spikes = jax.grad(loss, argnums=(0, 1), has_aux=True)(p, w_rec)
  expected_grads, expected = jax.grad(reference_loss, argnums=(0, 1), has_aux=True)(p, w_rec)
  np.testing.assert_array_equal(spikes, expected)
  assert float(jnp.sum(spikes)) > 0
  jax.tree.map(
    functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6), grads, expected_grads
  )


def test_the_layer_sows_its_firing_rate():
  x, _ = _inputs()
  layer = _layer("lif")
  (spikes, _), captured = nnx.capture(layer, nnx.Intermediate)(x)
  rate = nnx.to_pure_dict(captured)["firing_rate"]
  np.testing.assert_allclose(rate, jnp.mean(spikes, axis=(0, 1)), rtol=1e-6)


def _lif_step():
  return gnn.recurrent_step(functools.partial(neurons.lif_step, constants=neurons.LIFConstants()))


@pytest.mark.parametrize(
  "w_rec,bias,spikes,message",
  [
    ((C, C - 1), None, (B, C), r"w_rec must have shape \(5, 5\).*got \(5, 4\)"),
    ((C, C), (C + 1,), (B, C), r"bias must have shape \(5,\).*got \(6,\)"),
    ((C, C), None, (C,), r"state.spikes must have the shape .* \(3, 5\), got \(5,\)"),
  ],
)
def test_a_shape_error_names_what_was_expected(w_rec, bias, spikes, message):
  params = gnn.RecurrentParams(None, jnp.zeros(w_rec), None if bias is None else jnp.zeros(bias))
  state = gnn.RecurrentState(neurons.LIFState.zeros((B, C)), jnp.zeros(spikes))
  with pytest.raises(ValueError, match=message):
    _lif_step()(params, state, jnp.zeros((B, C)))


def test_the_layer_refuses_what_it_cannot_run():
  with pytest.raises(TypeError, match="neuron must be one of GLIF, KLIF, PLIF, LIF.*got Linear"):
    gnn.Recurrent(F, nnx.Linear(1, 1, rngs=nnx.Rngs(0)), channels=C, rngs=nnx.Rngs(0))  # type: ignore[arg-type]
  layer = _layer("glif")
  with pytest.raises(ValueError, match=r"built for T = 6 steps .* T = 4 steps"):
    layer(jnp.zeros((4, B, F)))
  with pytest.raises(ValueError, match=r"\[T, \*batch, F\].*\(4,\)"):
    layer(jnp.zeros((F,)))
