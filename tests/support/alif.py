"""The adaptive-threshold LIF of the own-neuron tutorial (docs/tutorials/own_neuron.md),
a step function of the user's own for the tests of `neurons.run`."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glif_jax import surrogates


class ALIFParams(NamedTuple):
  w: jax.Array  # 1/τ = sigmoid(w)
  b: jax.Array  # β = softplus(b), the threshold jump per spike


class ALIFState(NamedTuple):
  v: jax.Array  # membrane potential
  theta: jax.Array  # current threshold


def alif_params(tau=2.0, beta=0.5, channels=None):
  shape = () if channels is None else (channels,)
  return ALIFParams(jnp.full(shape, -np.log(tau - 1.0)), jnp.full(shape, np.log(np.expm1(beta))))


def alif_step(p, state, x_t, *, v_th=1.0, rho=0.9, surrogate=surrogates.sigmoid(4.0)):
  """H = V + (X − V)/τ; S = Θ(H − θ); V = H·(1 − S); θ relaxes to V_th and jumps by β·S."""
  h = state.v + (x_t - state.v) * jax.nn.sigmoid(p.w)
  spike = surrogate(h - state.theta, inclusive=True)
  theta = v_th + rho * (state.theta - v_th) + jax.nn.softplus(p.b) * spike
  return spike, ALIFState(h * (1 - spike), theta)


def alif_rest(shape, v_th=1.0):
  return ALIFState(jnp.zeros(shape), jnp.full(shape, v_th))
