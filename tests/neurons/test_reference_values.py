"""Gradients by value against the NumPy reference, and bfloat16 against float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax import neurons, surrogates
from tests.support import numpy_reference as ref
from tests.support.params import as_numpy, random_params

T, B, C = 6, 3, 4


@pytest.mark.parametrize(
  "options",
  [
    {"v_reset": None},
    {"scale_reset": True},
    {"v_reset": None, "scale_reset": True},
    {"decay_input": False},
    {"decay_input": False, "v_reset": 0.2, "tau": 3.0, "v_th": 0.8},
  ],
  ids=["soft-reset", "scale-reset", "soft-scale-reset", "no-decay-input", "constants"],
)
def test_klif_gradients_match_the_numpy_reference(options):
  key_x, key_g = jax.random.split(jax.random.key(21))
  x = jax.random.uniform(key_x, (T, B, C), minval=-0.5, maxval=2.0)
  cotangent = jax.random.normal(key_g, (T, B, C))
  constants = neurons.LIFConstants(**options)
  loss = lambda k, x: jnp.sum(
    neurons.klif(neurons.KLIFParams(k), x, constants=constants)[0] * cotangent
  )
  dk, dx = jax.grad(loss, argnums=(0, 1))(jnp.float32(1.3), x)
  x64, cot64 = np.asarray(x, np.float64), np.asarray(cotangent, np.float64)
  dx_ref, dk_ref = ref.klif_backward_general(1.3, x64, cot64, **options)
  assert 0 < ref.klif_forward(1.3, x64, **options)[1].mean() < 1
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dk, dk_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gating", ["hard", "static"])
def test_glif_gradients_match_the_numpy_reference(gating):
  key_x, key_p, key_g = jax.random.split(jax.random.key(22), 3)
  p = random_params(key_p)
  x = jax.random.uniform(key_x, (T, B, C), minval=-0.5, maxval=1.5)
  cotangent = jax.random.normal(key_g, (T, B, C))
  constants = neurons.GLIFConstants(gating=gating)
  spikes, vjp = jax.vjp(lambda p, x: neurons.glif(p, x, constants=constants)[0], p, x)
  d_params, dx = vjp(cotangent)
  x64 = np.asarray(x, np.float64)
  _, o_ref = ref.glif_forward(as_numpy(p), x64, gating)
  np.testing.assert_array_equal(spikes, o_ref)
  dx_ref, d_raw_ref = ref.glif_backward(as_numpy(p), x64, np.asarray(cotangent, np.float64), gating)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
  for name in neurons.GLIFParams._fields:
    np.testing.assert_allclose(
      getattr(d_params, name), d_raw_ref[name], rtol=1e-4, atol=1e-5, err_msg=name
    )


# bfloat16 keeps 8 significant bits: a membrane potential of size ~1 after T = 6 steps
# is within BF16_ATOL of float32's, and spikes agree wherever float32's membrane is
# further than that from the threshold.
BF16_ATOL = 0.05


@pytest.mark.parametrize("which", ["glif", "klif", "lif"])
def test_bfloat16_matches_float32_within_its_precision(which):
  x = jax.random.uniform(jax.random.key(23), (T, 64, C), maxval=1.5)
  x = x.astype(jnp.bfloat16).astype(jnp.float32)  # the same input in both precisions
  p = random_params(jax.random.key(24))
  run = {
    "glif": lambda x: neurons.glif_trace(p, x),
    "klif": lambda x: neurons.klif_trace(neurons.klif_params(1.3), x),
    "lif": lambda x: neurons.lif_trace(x),
  }[which]
  spikes32, trace32 = run(x)
  spikes16, trace16 = run(x.astype(jnp.bfloat16))
  assert spikes16.dtype == jnp.bfloat16
  u32, u16 = (np.asarray(t[0], np.float32) for t in (trace32, trace16))
  if which == "glif":  # u is the potential compared with V_th
    margin = u32 - np.asarray(jax.nn.sigmoid(p.v_th))
  else:  # v is after the reset: rebuild H (τ = 2, V_reset = 0) and F = ReLU(k·H)
    v_prev = np.concatenate([np.zeros_like(u32[:1]), u32[:-1]])
    h = v_prev + (np.asarray(x) - v_prev) / 2
    margin = (np.maximum(1.3 * h, 0) if which == "klif" else h) - 1.0
  # compare where no step so far of the same neuron came close to the threshold
  clean = ~np.maximum.accumulate(np.abs(margin) < BF16_ATOL, axis=0)
  assert clean.mean() > 0.5
  np.testing.assert_array_equal(
    np.asarray(spikes16, np.float32)[clean], np.asarray(spikes32)[clean]
  )
  np.testing.assert_allclose(u16[clean], u32[clean], atol=BF16_ATOL)


def test_bfloat16_glif_gradients_match_float32():
  x = jax.random.uniform(jax.random.key(25), (T, 64, C), maxval=1.5)
  x = x.astype(jnp.bfloat16).astype(jnp.float32)
  p = random_params(jax.random.key(26))
  surrogate = surrogates.sigmoid(4.0)  # smooth: no box edge to fall on either side of

  def dx(x):
    return jax.grad(
      lambda x: (
        neurons.glif(p, x, constants=neurons.GLIFConstants(surrogate=surrogate))[0]
        .astype(jnp.float32)
        .sum()
      )
    )(x)

  dx32 = np.asarray(dx(x))
  dx16 = np.asarray(dx(x.astype(jnp.bfloat16)), np.float32)
  spikes32 = np.asarray(neurons.glif(p, x)[0])
  spikes16 = np.asarray(neurons.glif(p, x.astype(jnp.bfloat16))[0], np.float32)
  same = np.all(spikes32 == spikes16, axis=0)  # neurons (b, c) are independent
  assert same.mean() > 0.9
  dx16, dx32 = dx16[:, same], dx32[:, same]
  # a few bf16 roundings per step, compounded over 6 steps: 5 % of the largest gradient
  np.testing.assert_allclose(dx16, dx32, atol=0.05 * np.abs(dx32).max())


def test_glif_coefficients_are_the_papers_terms():
  p = neurons.glif_params(None, 2, gate_init="fixed", tau=0.3, v_th=0.6, leak=0.1, v_reset=0.4)
  c = neurons.glif_coefficients(p)
  alpha, beta, gamma = 0.55, 0.65, 0.55  # the fixed gates
  expected = (1 - alpha * (1 - 0.3), gamma, (1 - alpha) * 0.1, (1 - gamma) * 0.4)
  np.testing.assert_allclose([c.decay, c.hard_reset, c.leak, c.soft_reset], expected, rtol=1e-5)
  np.testing.assert_allclose(c.gain, [1 - beta * 0.5] * 2, rtol=1e-5)
  f = neurons.glif_coefficients(p, simplified=True)
  np.testing.assert_allclose(
    [f.decay, f.hard_reset, f.leak, f.soft_reset], [0.3, 1, 0.1, 0.4], rtol=1e-5
  )
