"""The neuron modules (Flax NNX): they match the pure functions, split cleanly and train
functionally."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import neurons
from glif_jax import nn as gnn

T, B, C = 4, 2, 3


@pytest.mark.parametrize(
  "module, pure",
  [
    (lambda: gnn.GLIF(C, T, rngs=nnx.Rngs(0)), lambda m, x: neurons.glif(m.params, x)),
    (
      lambda: gnn.GLIF(C, T, simplified=True, rngs=nnx.Rngs(0)),
      lambda m, x: neurons.glif_f(m.params, x),
    ),
    (lambda: gnn.KLIF(k=1.5), lambda m, x: neurons.klif(neurons.KLIFParams(m.k[...]), x)),
    (
      lambda: gnn.PLIF(C, init_tau=3.0),
      lambda m, x: neurons.lif(x, constants=neurons.LIFConstants(tau=3.0)),
    ),
    (
      lambda: gnn.LIF(tau=2.0, v_reset=None),
      lambda m, x: neurons.lif(x, constants=neurons.LIFConstants(v_reset=None)),
    ),
  ],
  ids=["glif", "glif_f", "klif", "plif", "lif"],
)
def test_module_equals_pure_function_and_sows_firing_rate(module, pure):
  m = module()
  x = jax.random.uniform(jax.random.key(0), (T, B, 5, C), maxval=2.0)
  (spikes, state), captured = nnx.capture(lambda m, x: m(x), nnx.Intermediate)(m, x)
  expected, expected_state = pure(m, x)
  np.testing.assert_array_equal(spikes, expected)
  jax.tree.map(np.testing.assert_array_equal, state, expected_state)
  assert not nnx.state(m, nnx.Intermediate)  # the module itself keeps nothing
  (rate,) = jax.tree.leaves(captured)
  np.testing.assert_allclose(rate, spikes.mean(axis=(0, 1, 2)), rtol=1e-6)


def test_neuron_parameters_are_their_own_variable_type():
  m = gnn.GLIF(C, T, rngs=nnx.Rngs(0))
  neuron_state = nnx.state(m, gnn.NeuronParam)
  assert sum(v.size for v in jax.tree.leaves(neuron_state)) == (7 + T) * C
  assert isinstance(m.alpha, nnx.Param)  # still a Param: optimisers that take all Params see it
  layer_wise = gnn.GLIF(None, T, gate_init="fixed", rngs=nnx.Rngs(0))
  assert sum(v.size for v in jax.tree.leaves(nnx.state(layer_wise, gnn.NeuronParam))) == 7 + T


class _TinyNet(nnx.Module):
  def __init__(self, rngs):
    self.conv = nnx.Conv(2, C, (3, 3), use_bias=False, rngs=rngs)
    self.bn = gnn.TdBatchNorm(C)
    self.glif = gnn.GLIF(C, T, rngs=rngs)
    self.head = nnx.Linear(C, 2, rngs=rngs)
    self.klif = gnn.KLIF()

  def __call__(self, x):
    s, _ = self.glif(self.bn(gnn.fold_time(self.conv, x)))
    s, _ = self.klif(gnn.fold_time(self.head, s.mean(axis=(2, 3))) * 4)
    return s


def test_split_pure_function_jit_grad():
  model = _TinyNet(nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = jax.random.normal(jax.random.key(1), (T, B, 6, 6, 2))

  @jax.jit
  def loss_and_stats(params, rest, x):
    def loss(params):
      m = nnx.merge(graphdef, params, rest, copy=True)
      return jnp.mean(m(x)), nnx.state(m, nnx.BatchStat)

    return jax.value_and_grad(loss, has_aux=True)(params)

  (value, batch_stats), grads = loss_and_stats(params, rest, x)
  assert jnp.isfinite(value)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert jnp.all(jnp.isfinite(g)), jax.tree_util.keystr(path)
  neuron_grads = nnx.state(nnx.merge(graphdef, grads, rest, copy=True), gnn.NeuronParam)
  assert any(jnp.any(g != 0) for g in jax.tree.leaves(neuron_grads))
  # the step returned new running statistics without touching the model
  assert not np.allclose(batch_stats["bn"]["norm"]["mean"][...], 0)
  np.testing.assert_array_equal(model.bn.norm.mean[...], 0)


def test_bad_gating_is_refused_at_construction():
  with pytest.raises(ValueError, match="gating must be one of .* got 'fuzzy'"):
    gnn.GLIF(C, T, gating="fuzzy", rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
  "build",
  [
    lambda: gnn.GLIF(C, T, v_thresh=0.5, rngs=nnx.Rngs(0)),
    lambda: gnn.KLIF(v_treshold=1.0),
    lambda: gnn.PLIF(tau=2.0),  # PLIF's τ is learnable: its option is init_tau
    lambda: gnn.LIF(decay=0.5),
  ],
  ids=["glif", "klif", "plif", "lif"],
)
def test_misspelt_option_is_refused_at_construction(build):
  with pytest.raises(TypeError, match="unexpected keyword argument"):
    build()


def test_glif_initial_values_are_keyword_arguments():
  # the CIFAR10-DVS neuron of the authors' cifar10dvs/layers.py
  m = gnn.GLIF(C, T, v_th=0.99999, tau=0.5, conduct=0.9, leak=0.99999 / 32, rngs=nnx.Rngs(0))
  values = {name: jax.nn.sigmoid(v) for name, v in m.params._asdict().items()}
  for name, expected in [("v_th", 0.99999), ("tau", 0.5), ("conduct", 0.9), ("leak", 0.03125)]:
    np.testing.assert_allclose(values[name], np.full(values[name].shape, expected), rtol=1e-4)
  assert values["conduct"].shape == (T, C)
