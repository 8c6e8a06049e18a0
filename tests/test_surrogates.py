"""Shared checks over every surrogate: forward is Heaviside, backward is the documented formula."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax import surrogates

# name -> (default surrogate, the documented dH/dx written independently in NumPy, peak at 0)
DOCUMENTED = {
  "rectangle": (surrogates.rectangle(), lambda x: (np.abs(x) < 0.5) * 1.0, 1.0),
  "sigmoid": (surrogates.sigmoid(), lambda x: 4 * np.exp(-4 * x) / (1 + np.exp(-4 * x)) ** 2, 1.0),
  "atan": (surrogates.atan(), lambda x: 1.0 / (1 + (math.pi * x) ** 2), 1.0),
  "triangle": (surrogates.triangle(), lambda x: np.maximum(0, 1 - np.abs(x)), 1.0),
  "superspike": (surrogates.superspike(), lambda x: 1 / (1 + 10 * np.abs(x)) ** 2, 1.0),
}
NAMES = sorted(DOCUMENTED)
GRID = np.linspace(-2.0, 2.0, 81)[np.abs(np.linspace(-2.0, 2.0, 81)) != 0.5]  # off the box edges


@pytest.mark.parametrize("name", NAMES)
def test_forward_is_heaviside(name):
  spike = DOCUMENTED[name][0]
  x = jnp.array([-1.0, -1e-6, 0.0, 1e-6, 1.0])
  np.testing.assert_array_equal(spike(x), [0, 0, 0, 1, 1])
  np.testing.assert_array_equal(spike(x, inclusive=True), [0, 0, 1, 1, 1])


@pytest.mark.parametrize("name", NAMES)
def test_gradient_is_the_documented_formula(name):
  spike, formula, peak = DOCUMENTED[name]
  grad = jax.vmap(jax.grad(spike))(jnp.asarray(GRID, jnp.float32))
  np.testing.assert_allclose(grad, formula(GRID), rtol=1e-5, atol=1e-7)
  assert jax.grad(spike)(0.0) == pytest.approx(peak)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_scales_the_cotangent_and_works_under_jit(name):
  spike = DOCUMENTED[name][0]
  x = jnp.asarray(GRID, jnp.float32)
  cotangent = jnp.linspace(-1.0, 3.0, x.size)
  _, vjp = jax.vjp(jax.jit(spike), x)
  np.testing.assert_allclose(vjp(cotangent)[0], cotangent * spike.grad(x), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16(name):
  spike = DOCUMENTED[name][0]
  x = jnp.asarray(GRID, jnp.bfloat16)
  out, vjp = jax.vjp(spike, x)
  (grad,) = vjp(jnp.ones_like(out))
  assert out.dtype == grad.dtype == jnp.bfloat16
  assert jnp.all(jnp.isfinite(grad))
  np.testing.assert_allclose(
    grad.astype(np.float32), DOCUMENTED[name][1](GRID), atol=2e-2, rtol=2e-2
  )


def test_parameters_set_width_and_slope():
  assert jax.grad(surrogates.rectangle(width=2.0))(0.9) == 0.5
  assert jax.grad(surrogates.rectangle(width=2.0))(1.1) == 0.0
  assert jax.grad(surrogates.sigmoid(alpha=8.0))(0.0) == pytest.approx(2.0)
  assert jax.grad(surrogates.atan(alpha=4.0))(0.0) == pytest.approx(2.0)
  assert jax.grad(surrogates.triangle(width=0.5))(0.25) == pytest.approx(1.0)
  assert jax.grad(surrogates.superspike(beta=1.0))(1.0) == pytest.approx(0.25)


def test_surrogates_are_values():
  assert surrogates.sigmoid(4.0) == surrogates.sigmoid(4.0)
  assert hash(surrogates.rectangle()) == hash(surrogates.rectangle(1.0))
  assert surrogates.sigmoid(4.0) != surrogates.sigmoid(2.0)


def test_bad_arguments():
  with pytest.raises(ValueError, match="width must be > 0, got 0"):
    surrogates.rectangle(0)
  with pytest.raises(TypeError, match="floating-point input, got dtype int32"):
    surrogates.sigmoid()(jnp.array([1, 2], jnp.int32))


@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_spikes_are_nan_where_the_input_is_nan_as_jnp_heaviside(name, inclusive):
  spike, formula, _ = DOCUMENTED[name]
  x = jnp.array([-jnp.inf, -1.0, 0.0, 1.0, jnp.inf, jnp.nan])
  expected = jnp.heaviside(x, 1.0 if inclusive else 0.0)  # [0, 0, 0 or 1, 1, 1, nan]
  np.testing.assert_array_equal(spike(x, inclusive=inclusive), expected)
  np.testing.assert_array_equal(surrogates.heaviside(x, inclusive), expected)
  grads = jax.grad(lambda v: spike(v, inclusive=inclusive).sum())(x[1:4])
  np.testing.assert_allclose(grads, formula(np.array([-1.0, 0.0, 1.0])), rtol=1e-6)  # unchanged
