"""GLIF and GLIF_f against hand values (docs/explanation/neurons.md) and NumPy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from glif_jax import neurons, surrogates
from tests.support import numpy_reference as ref
from tests.support.params import as_numpy, random_params

T, B, C = 6, 3, 4
HARD, STATIC = neurons.GLIFConstants(gating="hard"), neurons.GLIFConstants(gating="static")


def params_with(alpha, beta, gamma, timesteps=T, channels=None):
  """GLIF params with the given gate values and the authors' other defaults."""
  p = neurons.glif_params(channels, timesteps, gate_init="fixed")
  logit = lambda g: jnp.full(p.alpha.shape, np.log(g / (1 - g)), jnp.float32)
  return p._replace(alpha=logit(alpha), beta=logit(beta), gamma=logit(gamma))


def test_hand_values_half_gates():
  p = params_with(0.5, 0.5, 0.5)
  x = jnp.full((T, 1), 0.5)
  spikes, trace = neurons.glif_trace(p, x)
  _, state = neurons.glif(p, x)
  np.testing.assert_allclose(
    trace.u[:, 0], [0.34375, 0.558594, 0.268311, 0.511444, 0.253576, 0.502235], atol=1e-5
  )
  np.testing.assert_array_equal(spikes[:, 0], [0, 1, 0, 1, 0, 1])
  np.testing.assert_array_equal(trace.o, spikes)
  np.testing.assert_allclose(state.u, trace.u[-1])


def test_hand_values_fixed_gates():
  p = neurons.glif_params(None, T, gate_init="fixed")
  np.testing.assert_allclose(
    jax.nn.sigmoid(jnp.stack([p.alpha, p.beta, p.gamma])), [0.55, 0.65, 0.55], rtol=1e-6
  )
  spikes, _ = neurons.glif(p, jnp.full((T, 1), 0.5))
  np.testing.assert_array_equal(spikes[:, 0], [0, 0, 1, 0, 0, 1])


def test_default_values_and_random_init():
  p = neurons.glif_params(C, T, gate_init="random", key=jax.random.key(0))
  values = {name: jax.nn.sigmoid(v) for name, v in p._asdict().items()}
  for name, expected in [("tau", 0.25), ("v_th", 0.5), ("leak", 0.0625), ("v_reset", 0.5)]:
    np.testing.assert_allclose(values[name], jnp.full((C,), expected), rtol=1e-6)
  np.testing.assert_allclose(values["conduct"], jnp.full((T, C), 0.5))
  gates = jnp.stack([p.alpha, p.beta, p.gamma])
  assert gates.shape == (3, C)
  assert jnp.all(jnp.abs(gates) <= 0.1) and jnp.unique(gates).size == 3 * C
  assert sum(v.size for v in p) == (7 + T) * C


def test_initial_values_are_keyword_arguments():
  p = neurons.glif_params(None, 2, gate_init="fixed", tau=0.5, v_th=0.8, v_reset=0.3, conduct=0.9)
  values = {name: float(jnp.mean(jax.nn.sigmoid(v))) for name, v in p._asdict().items()}
  expected = dict(tau=0.5, v_th=0.8, leak=0.8 / 8, v_reset=0.3, conduct=0.9)
  assert values == pytest.approx({**values, **expected}, rel=1e-6)
  leak = neurons.glif_params(None, 2, gate_init="fixed", leak=0.01).leak
  np.testing.assert_allclose(jax.nn.sigmoid(leak), 0.01, rtol=1e-5)
  with pytest.raises(ValueError, match=r"v_th must lie in \(0, 1\).*got 1.5"):
    neurons.glif_params(None, 2, gate_init="fixed", v_th=1.5)


def test_forward_matches_numpy_reference():
  key_x, key_p = jax.random.split(jax.random.key(1))
  p = random_params(key_p)
  x = jax.random.uniform(key_x, (T, B, C), minval=-0.5, maxval=1.5)
  spikes, trace = neurons.glif_trace(p, x)
  u_ref, o_ref = ref.glif_forward(as_numpy(p), np.asarray(x, np.float64))
  margin = np.abs(u_ref - ref.sigmoid(as_numpy(p)["v_th"]))
  assert margin.min() > 1e-4, "pick a seed with no near-threshold value"
  assert 0.1 < o_ref.mean() < 0.9
  np.testing.assert_array_equal(spikes, o_ref)
  np.testing.assert_allclose(trace.u, u_ref, atol=1e-5)


def test_gradients_match_hand_derived_bptt():
  key_x, key_p, key_g = jax.random.split(jax.random.key(2), 3)
  p = random_params(key_p)
  x = jax.random.uniform(key_x, (T, B, C), minval=-0.5, maxval=1.5)
  cotangent = jax.random.normal(key_g, (T, B, C))
  _, vjp = jax.vjp(lambda p, x: neurons.glif(p, x)[0], p, x)
  d_params, dx = vjp(cotangent)
  dx_ref, d_raw_ref = ref.glif_backward(
    as_numpy(p), np.asarray(x, np.float64), np.asarray(cotangent, np.float64)
  )
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
  for name in neurons.GLIFParams._fields:
    np.testing.assert_allclose(
      getattr(d_params, name), d_raw_ref[name], rtol=1e-4, atol=1e-5, err_msg=name
    )


def test_every_raw_parameter_gets_a_finite_nonzero_gradient():
  p = neurons.glif_params(C, T, key=jax.random.key(3))
  x = jax.random.uniform(jax.random.key(4), (T, B, C), maxval=2.0)
  grads = jax.grad(lambda p: neurons.glif(p, x)[0].sum())(p)
  for name, g in grads._asdict().items():
    assert jnp.all(jnp.isfinite(g)), name
    assert jnp.any(g != 0), name


def test_membrane_is_smooth_without_spikes():
  """Below threshold and with the reset detached, u is smooth: check_grads applies."""
  p = random_params(jax.random.key(5), scale=0.3)
  x = jax.random.uniform(jax.random.key(6), (T, B, C), maxval=0.2)

  def membrane(p, x):
    _, trace = neurons.glif_trace(p, x, constants=neurons.GLIFConstants(detach_reset=True))
    return trace.u

  assert not jnp.any(neurons.glif(p, x)[0])
  check_grads(membrane, (p, x), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)


def test_glif_f_matches_numpy_reference():
  p = random_params(jax.random.key(7))
  x = jax.random.uniform(jax.random.key(8), (T, B, C), minval=-0.5, maxval=2.0)
  spikes, _ = neurons.glif_f(p, x)
  _, trace = neurons.glif_trace(p, x, constants=neurons.GLIFConstants(simplified=True))
  u_ref, o_ref = ref.glif_f_forward(as_numpy(p), np.asarray(x, np.float64))
  assert 0 < o_ref.mean() < 1
  np.testing.assert_array_equal(spikes, o_ref)
  np.testing.assert_allclose(trace.u, u_ref, atol=1e-5)


def test_hard_gating_uses_binary_gates_with_straight_through_gradient():
  p = params_with(0.5, 0.5, 0.5, channels=3)
  p = p._replace(
    alpha=jnp.array([0.3, -0.2, 0.1]),
    beta=jnp.array([-0.4, 0.2, 0.3]),
    gamma=jnp.array([0.1, 0.1, -0.5]),
  )
  binary = lambda raw: jnp.where(raw > 0, 30.0, -30.0)  # σ(±30) is 1 or 0 in float32
  p_binary = p._replace(alpha=binary(p.alpha), beta=binary(p.beta), gamma=binary(p.gamma))
  x = jax.random.uniform(jax.random.key(9), (T, B, 3), maxval=1.5)
  hard, hard_trace = neurons.glif_trace(p, x, constants=HARD)
  soft, soft_trace = neurons.glif_trace(p_binary, x)
  np.testing.assert_array_equal(hard, soft)
  np.testing.assert_allclose(hard_trace.u, soft_trace.u, atol=1e-6)
  grads = jax.grad(lambda p: neurons.glif(p, x, constants=HARD)[0].sum())(p)
  assert jnp.any(grads.alpha != 0) and jnp.any(grads.gamma != 0)


def test_static_gating_freezes_only_the_gates():
  p = neurons.glif_params(C, T, key=jax.random.key(10))
  x = jax.random.uniform(jax.random.key(11), (T, B, C), maxval=2.0)
  soft = neurons.glif(p, x)[0]
  static = neurons.glif(p, x, constants=STATIC)[0]
  np.testing.assert_array_equal(soft, static)
  grads = jax.grad(lambda p: neurons.glif(p, x, constants=STATIC)[0].sum())(p)
  for name in ("alpha", "beta", "gamma"):
    np.testing.assert_array_equal(getattr(grads, name), 0)
  assert jnp.any(grads.tau != 0) and jnp.any(grads.v_th != 0)


def test_state_carries_over_between_calls():
  p = random_params(jax.random.key(14))
  x = jax.random.uniform(jax.random.key(15), (T, B, C), maxval=1.5)
  full, full_state = neurons.glif(p, x)
  head = p._replace(conduct=p.conduct[:2])
  tail = p._replace(conduct=p.conduct[2:])
  first, mid_state = neurons.glif(head, x[:2])
  second, end_state = neurons.glif(tail, x[2:], mid_state)
  np.testing.assert_array_equal(jnp.concatenate([first, second]), full)
  chex.assert_trees_all_close(end_state, full_state, atol=1e-6)


@pytest.mark.parametrize("shape", [(T, C), (T, 2, 5, 5, C)], ids=["no-batch", "images"])
def test_input_shapes(shape):
  p = random_params(jax.random.key(18))
  x = jax.random.uniform(jax.random.key(19), shape, maxval=1.5)
  spikes, state = neurons.glif(p, x)
  assert spikes.shape == shape and state.u.shape == shape[1:]
  # every pixel is an independent neuron of its channel
  flat, _ = neurons.glif(p, x.reshape(T, -1, C))
  np.testing.assert_array_equal(spikes.reshape(T, -1, C), flat)


def test_layer_wise_parameters_broadcast_over_channels():
  p = random_params(jax.random.key(20), channels=None)
  assert p.alpha.shape == () and p.conduct.shape == (T,)
  x = jax.random.uniform(jax.random.key(21), (T, B, C), maxval=1.5)
  spikes, _ = neurons.glif(p, x)
  tiled = jax.tree.map(lambda a: jnp.broadcast_to(a[..., None], a.shape + (C,)), p)
  np.testing.assert_array_equal(spikes, neurons.glif(tiled, x)[0])


def test_vmap_over_parameter_sets_equals_python_loop():
  sets = [random_params(k) for k in jax.random.split(jax.random.key(22), 5)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *sets)
  x = jax.random.uniform(jax.random.key(23), (T, B, C), maxval=1.5)
  batched = jax.vmap(lambda p: neurons.glif(p, x)[0])(stacked)
  for i, p in enumerate(sets):
    np.testing.assert_array_equal(batched[i], neurons.glif(p, x)[0])


class JitTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_equals_eager(self):
    p = random_params(jax.random.key(24))
    x = jax.random.uniform(jax.random.key(25), (T, B, C), maxval=1.5)
    spikes, state = self.variant(neurons.glif)(p, x)
    expected_u, expected_o = ref.glif_forward(as_numpy(p), np.asarray(x, np.float64))
    np.testing.assert_array_equal(spikes, expected_o)
    np.testing.assert_allclose(state.u, expected_u[-1], atol=1e-5)


@pytest.mark.parametrize("fn", [neurons.glif, neurons.glif_f])
def test_bfloat16_input_runs_and_stays_finite(fn):
  p = random_params(jax.random.key(26))
  x = jax.random.uniform(jax.random.key(27), (T, B, C), maxval=1.5).astype(jnp.bfloat16)
  spikes, state = fn(p, x)
  assert spikes.dtype == jnp.bfloat16 and state.u.dtype == jnp.bfloat16
  assert jnp.all(jnp.isfinite(state.u)) and 0 < spikes.astype(jnp.float32).mean() < 1
  grads = jax.grad(lambda p: fn(p, x)[0].astype(jnp.float32).sum())(p)
  assert all(jnp.all(jnp.isfinite(g)) for g in grads)


@pytest.mark.parametrize(
  "call, error, words",
  [
    (lambda p: neurons.glif(p, jnp.ones((C,))), ValueError, ["[T, *batch, C]", "(4,)"]),
    (lambda p: neurons.glif(p, jnp.ones((T, B, C + 1))), ValueError, ["alpha", "(4,)", "(5,)"]),
    (
      lambda p: neurons.glif(p, jnp.ones((T + 1, B, C))),
      ValueError,
      ["conduct", "(7, 4)", "(6, 4)"],
    ),
    (
      lambda p: neurons.glif(
        p, jnp.ones((T, B, C)), constants=neurons.GLIFConstants(gating="sharp")
      ),
      ValueError,
      ["soft", "'sharp'"],
    ),
    (lambda p: neurons.glif(p, jnp.ones((T, B, C), jnp.int32)), TypeError, ["floating", "int32"]),
    (lambda p: neurons.glif(tuple(p), jnp.ones((T, B, C))), TypeError, ["GLIFParams", "tuple"]),
    (
      lambda p: neurons.glif(p, jnp.ones((T, B, C)), neurons.GLIFState.zeros((B + 1, C))),
      ValueError,
      ["(3, 4)", "(4, 4)"],
    ),
    (lambda p: neurons.glif_params(C, T, gate_init="zeros"), ValueError, ["random", "'zeros'"]),
    (lambda p: neurons.glif_params(C, T), ValueError, ["key", "None"]),
    (lambda p: neurons.glif_params(C, 0, gate_init="fixed"), ValueError, ["timesteps", "0"]),
  ],
  ids=[
    "rank",
    "channels",
    "conduct-T",
    "gating",
    "dtype",
    "params-type",
    "state",
    "gate-init",
    "missing-key",
    "timesteps",
  ],
)
def test_bad_input_raises_a_clear_error(call, error, words):
  p = neurons.glif_params(C, T, gate_init="fixed")
  with pytest.raises(error) as info:
    call(p)
  for word in words:
    assert word in str(info.value)


def test_glif_uses_the_surrogate_it_is_given():
  p = neurons.glif_params(None, 1, gate_init="fixed")
  x = jnp.array([[0.4]])  # u = I − leak share, a bit below threshold
  grad = lambda s: jax.grad(
    lambda x: neurons.glif(p, x, constants=neurons.GLIFConstants(surrogate=s))[0].sum()
  )(x)
  assert grad(surrogates.rectangle(1.0))[0, 0] > 0
  assert grad(surrogates.rectangle(0.01))[0, 0] == 0
