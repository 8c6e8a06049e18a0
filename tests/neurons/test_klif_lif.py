"""KLIF, LIF and PLIF against hand values (docs/explanation/neurons.md) and NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from glif_jax import neurons, surrogates
from tests.support import numpy_reference as ref

T, B, C = 8, 3, 5


def test_klif_hand_values():
  spikes, trace = neurons.klif_trace(neurons.klif_params(1.5), jnp.full((4, 1), 0.8))
  _, state = neurons.klif(neurons.klif_params(1.5), jnp.full((4, 1), 0.8))
  np.testing.assert_array_equal(spikes[:, 0], [0, 1, 0, 1])
  np.testing.assert_allclose(trace.v[:, 0], [0.6, 0.0, 0.6, 0.0], atol=1e-6)
  np.testing.assert_allclose(state.v, trace.v[-1])


def test_klif_k_scales_the_surrogate_slope():
  # k = 2, V = 0, X = 1: H = 0.5, F = 1 = V_th, so dS/dH = k·α/4 = 2 and dS/dk = H·α/4 = 0.5.
  loss = lambda k, x: neurons.klif(neurons.KLIFParams(k), x)[0].sum()
  dk, dx = jax.grad(loss, argnums=(0, 1))(jnp.float32(2.0), jnp.ones((1, 1)))
  assert dx[0, 0] == pytest.approx(2.0 / 2.0)  # dH/dX = 1/τ
  assert dk == pytest.approx(0.5)


@pytest.mark.parametrize(
  "options",
  [
    {},
    dict(decay_input=False),
    dict(v_reset=None),
    dict(scale_reset=True),
    dict(v_reset=None, scale_reset=True),
    dict(tau=3.0, v_th=0.7, v_reset=0.1),
  ],
  ids=["default", "no-decay-input", "soft-reset", "scale-reset", "soft-scale-reset", "constants"],
)
def test_klif_forward_matches_numpy_reference(options):
  x = jax.random.uniform(jax.random.key(0), (T, B, C), minval=-0.5, maxval=2.0)
  constants = neurons.LIFConstants(**options)
  spikes, trace = neurons.klif_trace(neurons.klif_params(1.3), x, constants=constants)
  v_ref, s_ref, _ = ref.klif_forward(1.3, np.asarray(x, np.float64), **options)
  assert 0 < s_ref.mean() < 1
  np.testing.assert_array_equal(spikes, s_ref)
  np.testing.assert_allclose(trace.v, v_ref, atol=1e-5)


def test_klif_gradients_match_hand_derived_bptt():
  key_x, key_g = jax.random.split(jax.random.key(1))
  x = jax.random.uniform(key_x, (T, B, C), minval=-0.5, maxval=2.0)
  cotangent = jax.random.normal(key_g, (T, B, C))
  loss = lambda k, x: jnp.sum(neurons.klif(neurons.KLIFParams(k), x)[0] * cotangent)
  dk, dx = jax.grad(loss, argnums=(0, 1))(jnp.float32(1.3), x)
  dx_ref, dk_ref = ref.klif_backward(1.3, np.asarray(x, np.float64), np.asarray(cotangent))
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dk, dk_ref, rtol=1e-4)


def test_klif_membrane_is_smooth_below_threshold():
  x = jax.random.uniform(jax.random.key(2), (T, B, C), minval=0.05, maxval=0.3)

  def membrane(k, x):
    detached = neurons.LIFConstants(detach_reset=True)
    return neurons.klif_trace(neurons.KLIFParams(k), x, constants=detached)[1].v

  assert not jnp.any(neurons.klif(neurons.KLIFParams(1.2), x)[0])
  check_grads(membrane, (jnp.float32(1.2), x), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_lif_is_klif_with_unit_k_on_positive_input():
  x = jax.random.uniform(jax.random.key(3), (T, B, C), minval=0.0, maxval=2.0)
  lif_out, lif_trace = neurons.lif_trace(x)
  klif_out, klif_trace = neurons.klif_trace(neurons.klif_params(1.0), x)
  np.testing.assert_array_equal(lif_out, klif_out)
  np.testing.assert_allclose(lif_trace.v, klif_trace.v, atol=1e-6)


def test_lif_matches_spikingjelly_equations():
  # SpikingJelly LIFNode(tau=2, decay_input=True, v_reset=0): H = V + (X − V)/2, fire at H >= 1.
  x = jnp.array([[1.0], [1.5], [0.6], [2.0]])
  spikes, trace = neurons.lif_trace(x)
  # H1 = 0.5; H2 = 0.5 + 0.5 = 1.0 (fires, >=); H3 = 0.3; H4 = 0.3 + 0.85 = 1.15 (fires)
  np.testing.assert_array_equal(spikes[:, 0], [0, 1, 0, 1])
  np.testing.assert_allclose(trace.v[:, 0], [0.5, 0.0, 0.3, 0.0], atol=1e-6)
  _, soft_trace = neurons.lif_trace(x, constants=neurons.LIFConstants(v_reset=None))
  np.testing.assert_allclose(soft_trace.v[:, 0], [0.5, 0.0, 0.3, 0.15], atol=1e-6)


def test_plif_at_its_initial_tau_equals_lif_and_learns_tau():
  x = jax.random.uniform(jax.random.key(4), (T, B, C), maxval=2.0)
  p = neurons.plif_params(init_tau=3.0, channels=C)
  np.testing.assert_allclose(jax.nn.sigmoid(p.w), 1 / 3, rtol=1e-6)
  np.testing.assert_array_equal(
    neurons.plif(p, x)[0], neurons.lif(x, constants=neurons.LIFConstants(tau=3.0))[0]
  )
  grad = jax.grad(lambda p: neurons.plif(p, x)[0].sum())(p)
  assert jnp.all(jnp.isfinite(grad.w)) and jnp.any(grad.w != 0)


@pytest.mark.parametrize("which", ["lif", "klif"])
def test_step_loop_equals_scan(which):
  x = jax.random.uniform(jax.random.key(5), (T, B, C), maxval=2.0)
  kp = neurons.klif_params(1.2)
  run = {"lif": lambda x: neurons.lif(x), "klif": lambda x: neurons.klif(kp, x)}[which]
  step = {
    "lif": lambda s, x_t: neurons.lif_step(None, s, x_t),
    "klif": lambda s, x_t: neurons.klif_step(kp, s, x_t),
  }[which]
  state = neurons.LIFState.zeros((B, C))
  spikes = []
  for t in range(T):
    spike, state = step(state, x[t])
    spikes.append(spike)
  scanned, final = run(x)
  np.testing.assert_array_equal(jnp.stack(spikes), scanned)
  np.testing.assert_allclose(state.v, final.v, atol=1e-6)


def test_vmap_over_k_equals_loop_and_jit_equals_eager():
  ks = jnp.array([0.5, 1.0, 1.5, 2.0])
  x = jax.random.uniform(jax.random.key(6), (T, B, C), maxval=2.0)
  batched = jax.jit(jax.vmap(lambda k: neurons.klif(neurons.KLIFParams(k), x)[0]))(ks)
  for i, k in enumerate(ks):
    np.testing.assert_array_equal(batched[i], neurons.klif(neurons.KLIFParams(k), x)[0])


@pytest.mark.parametrize("which", ["lif", "klif", "plif"])
def test_bfloat16_runs_and_stays_finite(which):
  x = jax.random.uniform(jax.random.key(7), (T, B, C), maxval=2.0).astype(jnp.bfloat16)
  run = {
    "lif": lambda x: neurons.lif(x),
    "klif": lambda x: neurons.klif(neurons.klif_params(), x),
    "plif": lambda x: neurons.plif(neurons.plif_params(), x),
  }[which]
  spikes, state = run(x)
  assert spikes.dtype == state.v.dtype == jnp.bfloat16
  assert jnp.all(jnp.isfinite(state.v)) and 0 < spikes.astype(jnp.float32).mean() < 1


@pytest.mark.parametrize(
  "call, error, words",
  [
    (lambda: neurons.klif(neurons.klif_params(), jnp.ones((T,))), ValueError, ["rank >= 2"]),
    (
      lambda: neurons.klif(neurons.klif_params(channels=C), jnp.ones((T, C + 1))),
      ValueError,
      ["k", "(5,)", "(6,)"],
    ),
    (lambda: neurons.klif((1.0,), jnp.ones((T, C))), TypeError, ["KLIFParams", "tuple"]),
    (
      lambda: neurons.lif(jnp.ones((T, C)), constants=neurons.LIFConstants(tau=0.0)),
      ValueError,
      ["tau", "0.0"],
    ),
    (
      lambda: neurons.plif(neurons.plif_params(channels=3), jnp.ones((T, C))),
      ValueError,
      ["w", "(3,)"],
    ),
    (lambda: neurons.plif_params(init_tau=1.0), ValueError, ["init_tau", "1.0"]),
    (
      lambda: neurons.lif(jnp.ones((T, B, C)), neurons.LIFState.zeros((C,))),
      ValueError,
      ["(3, 5)", "(5,)"],
    ),
  ],
  ids=["rank", "channels", "params-type", "tau", "plif-channels", "init-tau", "state"],
)
def test_bad_input_raises_a_clear_error(call, error, words):
  with pytest.raises(error) as info:
    call()
  for word in words:
    assert word in str(info.value)


def test_lif_uses_the_surrogate_it_is_given():
  x = jnp.array([[1.6]])  # H = 0.8, 0.2 below threshold
  grad = lambda s: jax.grad(
    lambda x: neurons.lif(x, constants=neurons.LIFConstants(surrogate=s))[0].sum()
  )(x)[0, 0]
  assert grad(surrogates.rectangle(1.0)) == pytest.approx(0.5)
  assert grad(surrogates.rectangle(0.2)) == 0.0
