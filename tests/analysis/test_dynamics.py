"""Neuron dynamics over parameter grids: closed forms, monotonicity, vmap == loop."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax import neurons
from glif_jax.analysis import dynamics

T = 120
TAUS = (2.0, 4.0)
V_TH = 1.0


def _off_interval_edges(currents, tau):
  """Currents whose LIF interval n* is not within rounding of an integer (float32 runs)."""
  decay = 1 - 1 / tau
  n = np.log(1 - V_TH / currents) / np.log(decay)
  return currents[np.abs(n - np.round(n)) > 1e-3]


@pytest.mark.parametrize("tau", TAUS)
def test_lif_fi_curve_matches_the_closed_form(tau):
  currents = _off_interval_edges(np.linspace(1.01, 6.0, 40), tau)
  currents = np.concatenate([[0.0, 0.5, 0.9], currents])  # below threshold: silent
  rates = dynamics.fi_curve(neurons.plif, dynamics.plif_logits(tau), currents, timesteps=T)
  expected = [dynamics.lif_closed_form_rate(c, tau=tau, v_th=V_TH, timesteps=T) for c in currents]
  np.testing.assert_allclose(rates[0], expected, atol=1e-6)


def test_lif_closed_form_by_hand():
  # τ = 2, X = 1.5: V = 0.75, 1.125 -> fires every 2nd step; 120 steps hold 60 spikes.
  assert dynamics.lif_closed_form_rate(1.5, tau=2.0, v_th=1.0, timesteps=T) == 0.5
  # X = 4: V_1 = 2 >= 1, fires every step.
  assert dynamics.lif_closed_form_rate(4.0, tau=2.0, v_th=1.0, timesteps=T) == 1.0
  # T = 7 with interval 2: three spikes (boundary).
  assert math.isclose(dynamics.lif_closed_form_rate(1.5, tau=2.0, v_th=1.0, timesteps=7), 3 / 7)


@pytest.mark.parametrize(
  "neuron, params, options",
  [
    (neurons.plif, dynamics.plif_logits(jnp.array(TAUS)), {}),
    (neurons.klif, neurons.KLIFParams(jnp.array([0.5, 1.0, 2.0])), {}),
    (
      neurons.glif,
      dynamics.glif_logits(
        alpha=jnp.array([0.0, 0.55, 1.0]), beta=0.65, gamma=jnp.array([1.0, 0.55, 1.0]), timesteps=T
      ),
      {},
    ),
    (
      neurons.glif,
      dynamics.glif_logits(alpha=0.55, beta=0.65, gamma=0.55, timesteps=T),
      {"gating": "hard"},
    ),
  ],
  ids=["lif", "klif", "glif", "glif-hard"],
)
def test_rate_is_monotone_in_input(neuron, params, options):
  currents = jnp.linspace(0.0, 4.0, 41)
  rates = dynamics.fi_curve(neuron, params, currents, timesteps=T, **options)
  assert np.all(np.diff(np.asarray(rates), axis=1) >= 0)
  assert np.all(rates[:, 0] == 0) and np.all(rates[:, -1] > 0)


def test_vmapped_gate_sweep_equals_a_python_loop():
  alpha, beta, gamma = jnp.array([0.0, 0.4, 1.0]), jnp.array([0.0, 1.0]), jnp.array([0.2, 1.0])
  x = jax.random.uniform(jax.random.key(0), (16,), maxval=1.2)
  conduct = jnp.linspace(0.2, 0.8, 16)
  sweep = dynamics.gate_sweep(alpha, beta, gamma, x, conduct=conduct)
  glif = jax.jit(functools.partial(neurons.glif_trace, unroll=1))  # one compile for the loop
  for i, a in enumerate(alpha):
    for j, b in enumerate(beta):
      for k, g in enumerate(gamma):
        p = dynamics.glif_logits(alpha=a, beta=b, gamma=g, timesteps=16, conduct=conduct)
        p = jax.tree.map(lambda leaf: leaf[0], p)
        spikes, trace = glif(p, x[:, None])
        np.testing.assert_array_equal(sweep.spikes[i, j, k], spikes[:, 0])
        np.testing.assert_allclose(sweep.u[i, j, k], trace.u[:, 0], rtol=1e-6, atol=1e-7)
        assert sweep.spike_count[i, j, k] == spikes.sum()
        fired = np.nonzero(np.asarray(spikes[:, 0]))[0]
        first = sweep.first_spike[i, j, k]
        assert (np.isnan(first) and not fired.size) or first == fired[0]


def test_simulate_vmaps_over_parameters_like_a_loop():
  ks = jnp.array([0.7, 1.0, 1.6])
  x = dynamics.poisson_spikes(jax.random.key(3), jnp.array([0.2, 0.5]), 20) * 1.5
  spikes, trace = dynamics.simulate(neurons.klif, neurons.KLIFParams(ks), x, tau=3.0)
  constants = neurons.LIFConstants(tau=3.0)
  klif = jax.jit(functools.partial(neurons.klif_trace, constants=constants, unroll=1))
  for g, k in enumerate(ks):
    s, tr = klif(neurons.KLIFParams(k), x)
    np.testing.assert_array_equal(spikes[g], s)
    np.testing.assert_allclose(trace.v[g], tr.v, rtol=1e-6, atol=1e-7)


def test_gates_interpolate_between_neuron_types():
  x = jnp.full((8,), 0.3)
  sweep = dynamics.gate_sweep(
    jnp.array([0.0, 1.0]), 0.0, jnp.array([0.0, 1.0]), x, tau=0.5, v_th=0.9, leak=0.1, v_reset=0.5
  )
  # α = 1: exponential decay u_t = 0.5·u + 0.3 -> 0.3, 0.45, 0.525, ... (never reaches 0.9)
  np.testing.assert_allclose(sweep.u[1, 0, 1, :3], [0.3, 0.45, 0.525], rtol=1e-6)
  # α = 0: linear leak u_t = u − 0.1 + 0.3: 0.2, 0.4, ..., 1.0 fires at step 4 (0-based)
  np.testing.assert_allclose(sweep.u[0, 0, 1, :5], [0.2, 0.4, 0.6, 0.8, 1.0], rtol=1e-6)
  assert sweep.first_spike[0, 0, 1] == 4 and np.isnan(sweep.first_spike[1, 0, 1])
  # after the spike: hard reset (γ = 1) restarts from 0, soft reset (γ = 0) subtracts V_R
  np.testing.assert_allclose(sweep.u[0, 0, 1, 5], 0.2, rtol=1e-6)
  np.testing.assert_allclose(sweep.u[0, 0, 0, 5], 1.0 - 0.5 + 0.2, rtol=1e-6)


def test_glif_terms_sum_to_the_membrane_and_match_hand_values():
  p = jax.tree.map(
    lambda a: a[0], dynamics.glif_logits(alpha=0.5, beta=0.5, gamma=0.5, timesteps=6)
  )
  x = jnp.full((6, 1), 0.5)
  _, trace = neurons.glif_trace(p, x, unroll=1)
  np.testing.assert_allclose(
    trace.u[:, 0], [0.34375, 0.558594, 0.268311, 0.511444, 0.253576, 0.502235], rtol=1e-5
  )  # by hand from GLIF's update (docs/explanation/neurons.md)
  terms = dynamics.glif_terms(p, x, trace)
  u = terms.decay - terms.hard_reset - terms.leak + terms.input - terms.soft_reset
  np.testing.assert_allclose(u, trace.u, rtol=1e-6, atol=1e-7)
  # after the spike at t = 1: hard share = 0.625·u_1·0.5, soft share = 0.5·0.5
  np.testing.assert_allclose(terms.hard_reset[2, 0], 0.625 * 0.558594 * 0.5, rtol=1e-5)
  np.testing.assert_allclose(terms.soft_reset[:, 0], [0, 0, 0.25, 0, 0.25, 0])


def test_glif_terms_with_hard_gating_and_channels():
  p = neurons.glif_params(3, 10, key=jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (10, 2, 3), maxval=1.5)
  hard = neurons.GLIFConstants(gating="hard")
  _, trace = neurons.glif_trace(p, x, constants=hard, unroll=1)
  terms = dynamics.glif_terms(p, x, trace, gating="hard")
  u = terms.decay - terms.hard_reset - terms.leak + terms.input - terms.soft_reset
  np.testing.assert_allclose(u, trace.u, rtol=1e-6, atol=1e-6)


def test_inputs():
  step = dynamics.step_current(jnp.array([1.0, 2.0]), 6, onset=2, offset=4)
  np.testing.assert_array_equal(step[:, 1], [0, 0, 2, 2, 0, 0])
  a = dynamics.poisson_spikes(jax.random.key(0), jnp.array([0.1, 0.9]), 2000)
  np.testing.assert_array_equal(a, dynamics.poisson_spikes(jax.random.key(0), [0.1, 0.9], 2000))
  np.testing.assert_allclose(a.mean(axis=0), [0.1, 0.9], atol=0.03)


def test_bad_arguments_fail_clearly():
  with pytest.raises(ValueError, match="conduct must be"):
    dynamics.glif_logits(alpha=0.5, beta=0.5, gamma=0.5, timesteps=4, conduct=jnp.ones(3))
  with pytest.raises(ValueError, match="skip"):
    dynamics.fi_curve(neurons.plif, dynamics.plif_logits(2.0), [1.0], timesteps=4, skip=4)
  with pytest.raises(ValueError, match="one input trace"):
    dynamics.gate_sweep(0.5, 0.5, 0.5, jnp.ones((4, 2)))
  fi = functools.partial(dynamics.fi_curve, neurons.glif, timesteps=4)
  with pytest.raises(ValueError, match="gating"):
    neurons.glif_gates(neurons.glif_params(None, 4, gate_init="fixed"), gating="sharp")
  assert fi(dynamics.glif_logits(alpha=1, beta=0, gamma=1, timesteps=4), [2.0]).shape == (1, 1)
