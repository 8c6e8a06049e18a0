"""Network statistics: SOP and MAC counts of a tiny network checked by hand, gates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import models
from glif_jax import nn as snn
from glif_jax.analysis import network

T, B = 2, 3


class _Tiny(nnx.Module):
  """conv 2→3 (direct encoding, once) → LIF → conv 3→4 stride 2 → GLIF → FC 36→2."""

  def __init__(self, rngs):
    self.enc = nnx.Conv(2, 3, (3, 3), padding=1, rngs=rngs)
    self.lif = snn.LIF(tau=2.0, v_th=0.3)
    self.conv = nnx.Conv(3, 4, (3, 3), strides=2, padding=1, use_bias=False, rngs=rngs)
    self.glif = snn.GLIF(4, T, rngs=rngs)
    self.head = nnx.Linear(36, 2, rngs=rngs)

  def spikes(self, x):
    y = self.enc(x)
    s1, _ = self.lif(jnp.broadcast_to(y, (T, *y.shape)))
    s2, _ = self.glif(snn.fold_time(self.conv, s1))
    return s1, s2

  def __call__(self, x):
    _, s2 = self.spikes(x)
    return snn.fold_time(self.head, s2.reshape(T, B, -1))


def test_counts_match_a_hand_count():
  model = _Tiny(nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (B, 5, 5, 2), maxval=2.0)
  stats = network.network_statistics(model, x)
  s1, s2 = nnx.jit(_Tiny.spikes)(model, x)
  r1, r2 = float(s1.mean()), float(s2.mean())
  assert 0 < r1 < 1 and 0 < r2 < 1
  # MACs per pass: enc 5·5·3 outputs × 3·3·2 = 1350; conv 3·3·4 × 3·3·3 = 972; head 36·2 = 72
  by_name = {s.name: s for s in stats.synapses}
  assert [s.name for s in stats.synapses] == ["enc", "conv", "head"]
  assert [by_name[n].ann_macs for n in ("enc", "conv", "head")] == [1350, 972, 72]
  assert [by_name[n].macs for n in ("enc", "conv", "head")] == [1350, T * 972, T * 72]
  assert [s.kind for s in stats.synapses] == ["Conv", "Conv", "Linear"]
  assert by_name["enc"].encoding and not by_name["conv"].encoding
  np.testing.assert_allclose(by_name["conv"].input_rate, r1, rtol=1e-6)
  np.testing.assert_allclose(stats.sops, r1 * T * 972 + r2 * T * 72, rtol=1e-5)
  assert stats.encoding_macs == 1350 and stats.ann_macs == 1350 + 972 + 72
  np.testing.assert_allclose(stats.snn_energy_pj, 4.6 * 1350 + 0.9 * stats.sops, rtol=1e-6)
  np.testing.assert_allclose(stats.ann_energy_pj, 4.6 * 2394, rtol=1e-6)
  np.testing.assert_allclose(stats.energy_ratio, stats.ann_energy_pj / stats.snn_energy_pj)
  # rates per layer and channel (network order), spike counts per sample
  assert list(stats.firing_rates) == ["lif", "glif"]
  np.testing.assert_allclose(stats.firing_rates["glif"], s2.mean(axis=(0, 1, 2, 3)), rtol=1e-6)
  np.testing.assert_allclose(stats.layer_rates["lif"], r1, rtol=1e-5)
  expected_counts = s1.sum(axis=(0, 2, 3, 4)) + s2.sum(axis=(0, 2, 3, 4))
  np.testing.assert_array_equal(stats.spike_counts, expected_counts)
  # the model is unchanged: nothing recorded stays behind, methods are restored
  assert not nnx.state(model, nnx.Intermediate)
  assert nnx.Conv.__call__.__module__.startswith("flax")


def test_zoo_model_counts_and_rate_consistency():
  model = models.create(
    "mlp", num_classes=10, timesteps=T, in_channels=1, width=8, rngs=nnx.Rngs(0)
  )
  stats = network.network_statistics(model, jnp.ones((B, 28, 28, 1)))
  assert stats.ann_macs == 784 * 8 + 8 * 10
  head = stats.synapses[-1]
  np.testing.assert_allclose(head.input_rate, stats.layer_rates["stem_neuron"], rtol=1e-6)
  np.testing.assert_allclose(stats.spike_counts.mean(), head.input_rate * T * 8, rtol=1e-5)


def test_glif_gates_are_the_sigmoids_of_the_logits():
  model = _Tiny(nnx.Rngs(0))
  gates = network.glif_gates(model)
  assert list(gates) == ["glif"]
  np.testing.assert_allclose(gates["glif"]["beta"], jax.nn.sigmoid(model.glif.beta[...]), rtol=1e-6)


def test_gate_evolution_reads_every_checkpoint(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  model = _Tiny(nnx.Rngs(0))
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    for step, shift in ((10, 0.0), (20, 1.0)):
      model.glif.alpha[...] = jnp.full((4,), shift)
      state = {"step": step, "params": nnx.state(model, nnx.Param)}
      manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  steps, gates = network.gate_evolution(tmp_path / "checkpoints")
  np.testing.assert_array_equal(steps, [10, 20])
  assert list(gates) == ["glif"] and gates["glif"]["alpha"].shape == (2, 4)
  np.testing.assert_allclose(
    gates["glif"]["alpha"][:, 0], jax.nn.sigmoid(jnp.array([0.0, 1.0])), rtol=1e-6
  )
