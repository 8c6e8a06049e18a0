"""NIR export: round trip (export, write, read, interpret) gives the same spikes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import nn as snn

nir = pytest.importorskip("nir")
from glif_jax.analysis import nir_export

T, B = 8, 3


def _scaled(layer, factor):
  layer.kernel[...] = layer.kernel[...] * factor
  return layer


def _round_trip(layers, x, tmp_path):
  graph = nir_export.to_nir(layers, x.shape[2:], dt=1e-3)
  nir.write(tmp_path / "net.nir", graph)
  loaded = nir.read(tmp_path / "net.nir")
  channel_first = x.transpose(0, 1, 4, 2, 3) if x.ndim == 5 else x
  ours = nnx.jit(nir_export.run_layers)(layers, x)
  return ours, jax.jit(lambda x: nir_export.run_nir(loaded, x, dt=1e-3))(channel_first)


def _assert_same_spiking(ours, theirs):
  assert 0.02 < float(ours.mean()) < 0.98, "the test network should spike, but not always"
  np.testing.assert_array_equal(ours, theirs)


def test_dense_lif_plif_round_trip(tmp_path):
  r = nnx.Rngs(0)
  layers = [
    _scaled(nnx.Linear(6, 8, rngs=r), 2.0),
    snn.LIF(tau=2.0, v_th=0.5, v_reset=0.2),
    _scaled(nnx.Linear(8, 5, use_bias=False, rngs=r), 3.0),
    snn.PLIF(5, init_tau=3.0, decay_input=False),
  ]
  layers[-1].w[...] = jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0])  # one τ per channel
  x = jax.random.uniform(jax.random.key(1), (T, B, 6), maxval=2.0)
  ours, theirs = _round_trip(layers, x, tmp_path)
  _assert_same_spiking(ours, theirs)


def test_conv_round_trip_with_flatten_and_glif(tmp_path):
  r = nnx.Rngs(0)
  layers = [
    nnx.Conv(2, 4, (3, 3), strides=2, padding=1, rngs=r),
    snn.LIF(tau=2.0, v_th=0.3),
    snn.TimeFolded(nnx.Conv(4, 4, (3, 3), padding="SAME", use_bias=False, rngs=r)),
    snn.PLIF(init_tau=2.5, v_th=0.2),
    _scaled(nnx.Linear(4 * 4 * 4, 5, rngs=r), 3.0),
    snn.GLIF(5, T, gating="hard", gate_init="fixed", rngs=r),  # hard gates: α = β = γ = 1
  ]
  x = jax.random.uniform(jax.random.key(1), (T, B, 8, 8, 2), maxval=2.0)
  for depth in (2, 6):  # the first stage too, so a silent layer cannot hide a mismatch
    ours, theirs = _round_trip(layers[:depth], x, tmp_path)
    if ours.ndim == 5:
      ours = ours.transpose(0, 1, 4, 2, 3)
    _assert_same_spiking(ours, theirs)


def test_glif_f_exports_and_matches(tmp_path):
  layers = [
    _scaled(nnx.Linear(4, 6, rngs=nnx.Rngs(0)), 2.0),
    snn.GLIF(6, T, simplified=True, rngs=nnx.Rngs(1)),
  ]
  x = jax.random.uniform(jax.random.key(2), (T, B, 4), maxval=2.0)
  ours, theirs = _round_trip(layers, x, tmp_path)
  _assert_same_spiking(ours, theirs)


def test_lif_mapping_by_hand():
  graph = nir_export.to_nir(
    [
      nnx.Linear(1, 1, rngs=nnx.Rngs(0)),
      snn.LIF(tau=4.0, v_th=1.0, v_reset=0.25, decay_input=False),
    ],
    (1,),
    dt=0.5,
  )
  lif = graph.nodes["1"]
  # dt/τ_NIR = 1/4, r = τ = 4, frame v = V − 0.25: v_threshold = 0.75, v_leak = v_reset = 0
  np.testing.assert_allclose([lif.tau[0], lif.r[0], lif.v_threshold[0]], [2.0, 4.0, 0.75])
  np.testing.assert_array_equal([lif.v_leak[0], lif.v_reset[0]], [0.0, 0.0])
  assert graph.edges == [("input", "0"), ("0", "1"), ("1", "output")]


@pytest.mark.parametrize(
  "neuron, reason",
  [
    (lambda: snn.KLIF(), "ReLU"),
    (lambda: snn.LIF(v_reset=None), "soft reset"),
    (lambda: snn.GLIF(3, T, rngs=nnx.Rngs(0)), "γ = 1"),
    (lambda: snn.GLIF(3, T, gating="hard", rngs=nnx.Rngs(0)), "γ = 1|α > 0"),
  ],
  ids=["klif", "lif-soft-reset", "glif-soft-gates", "glif-hard-random-gates"],
)
def test_inexact_neurons_raise_naming_the_reason(neuron, reason):
  layers = [nnx.Linear(2, 3, rngs=nnx.Rngs(0)), neuron()]
  with pytest.raises(NotImplementedError, match=reason):
    nir_export.to_nir(layers, (2,))


def test_glif_with_time_varying_conductance_raises():
  m = snn.GLIF(3, T, gating="hard", gate_init="fixed", rngs=nnx.Rngs(0))
  m.conduct[...] = jnp.linspace(-1.0, 1.0, T)[:, None] * jnp.ones(3)
  with pytest.raises(NotImplementedError, match="time-varying"):
    nir_export.to_nir([nnx.Linear(2, 3, rngs=nnx.Rngs(0)), m], (2,))


@pytest.mark.parametrize("dt", [0.0, -1e-3, float("nan"), float("inf")])
def test_a_time_step_that_is_not_a_finite_positive_number_is_refused(dt):
  layers = [nnx.Linear(2, 3, rngs=nnx.Rngs(0)), snn.LIF()]
  with pytest.raises(
    ValueError, match=rf"dt must be a finite number > 0 \(the time step\), got {dt}"
  ):
    nir_export.to_nir(layers, (2,), dt=dt)
  graph = nir_export.to_nir(layers, (2,))
  with pytest.raises(ValueError, match=r"dt must be a finite number > 0"):
    nir_export.run_nir(graph, jnp.ones((1, 1, 2)), dt=dt)


def test_an_empty_layer_list_is_refused():
  with pytest.raises(ValueError, match=r"layers must hold at least one layer"):
    nir_export.to_nir([], (2,))
