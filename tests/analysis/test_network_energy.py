"""Energy pricing: a layer whose input is binary spikes costs SOPs, any other MACs, by hand."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax import nn as snn
from glif_jax.analysis import network
from tests.support.models import small_model

T, B = 2, 3


class _PooledHead(nnx.Module):
  """FC 4→5 on spikes, LIF, 2×2 average pooling of the spikes, FC 20→2 (a pooled classifier)."""

  def __init__(self, rngs):
    self.fc = nnx.Linear(4, 5 * 2 * 2, rngs=rngs)
    self.lif = snn.LIF(tau=2.0, v_th=0.5)
    self.head = nnx.Linear(5, 2, rngs=rngs)

  def __call__(self, spikes_in):
    s, _ = self.lif(snn.fold_time(self.fc, spikes_in))
    pooled = s.reshape(T, B, 4, 5).mean(axis=2)  # average over 4 "pixels": fractions
    return snn.fold_time(self.head, pooled)


def test_layer_after_average_pooling_is_priced_as_macs():
  model = _PooledHead(nnx.Rngs(0))
  x = jax.random.bernoulli(jax.random.key(0), 0.5, (T, B, 4)).astype(jnp.float32)
  stats = network.network_statistics(model, x)
  fc, head = stats.synapses
  spikes, _ = model.lif(snn.fold_time(model.fc, x))
  assert not fc.encoding and head.encoding  # binary input -> SOPs; pooled fractions -> MACs
  # per sample: fc 4·20 MACs per step, head 5·2 per step, T steps each
  assert (fc.macs, head.macs) == (T * 80, T * 10)
  np.testing.assert_allclose(fc.sops, float(x.mean()) * T * 80, rtol=1e-6)
  assert head.sops == 0.0 and stats.encoding_macs == T * 10
  np.testing.assert_allclose(head.input_rate, float(spikes.mean()), rtol=1e-6)
  np.testing.assert_allclose(
    stats.snn_energy_pj, 4.6 * T * 10 + 0.9 * float(x.mean()) * T * 80, rtol=1e-6
  )


def _max_pool(spikes):
  """2×2 max pooling of ``[T, B, H, W, C]`` by hand."""
  t, b, h, w, c = spikes.shape
  return spikes.reshape(t, b, h // 2, 2, w // 2, 2, c).max(axis=(3, 5))


def test_cnn_small_feeds_spikes_to_its_synaptic_layers_priced_as_sops():
  model = small_model("cnn_small", num_classes=3, timesteps=T, width=2)
  x = jax.random.uniform(jax.random.key(1), (B, 8, 8, 1), maxval=3.0)
  stats = network.network_statistics(model, x)
  stem, conv = network.neuron_spikes(model, x).values()
  r_conv, r_head = float(_max_pool(stem).mean()), float(_max_pool(conv).mean())
  assert 0 < r_conv < 1 and 0 < r_head < 1
  # MACs per pass: stem 8·8·2 outputs × 3·3·1 = 1152 (once: direct encoding);
  # conv 4·4·4 × 3·3·2 = 1152 and FC 2·2·4 → 3 = 48, each on T steps of max-pooled spikes
  assert [s.ann_macs for s in stats.synapses] == [1152, 1152, 48]
  assert [s.macs for s in stats.synapses] == [1152, T * 1152, T * 48]
  assert [s.encoding for s in stats.synapses] == [True, False, False]
  np.testing.assert_allclose(
    [s.input_rate for s in stats.synapses[1:]], [r_conv, r_head], rtol=1e-6
  )
  sops = r_conv * T * 1152 + r_head * T * 48
  np.testing.assert_allclose(stats.sops, sops, rtol=1e-5)
  assert stats.encoding_macs == 1152
  np.testing.assert_allclose(stats.snn_energy_pj, 4.6 * 1152 + 0.9 * sops, rtol=1e-5)
  np.testing.assert_allclose(stats.ann_energy_pj, 4.6 * (1152 + 1152 + 48), rtol=1e-6)


def _stats(snn_uj: float, ann_uj: float) -> network.NetworkStats:
  return network.NetworkStats(
    {"lif": np.array([0.1])}, np.array([3.0]), [], 0.0, 0, 0, snn_uj * 1e6, ann_uj * 1e6
  )


def test_report_states_both_energies_and_the_ratio_in_words():
  cheaper = _stats(2.0, 8.0).markdown()
  assert (
    "SNN 2 µJ, ANN 8 µJ: the SNN needs 4.00× less energy than the ANN (ANN / SNN = 4.00)" in cheaper
  )
  costlier = _stats(17.43, 4.746).markdown()  # 17.43 / 4.746 = 3.6726
  assert (
    "SNN 17.43 µJ, ANN 4.746 µJ: the SNN needs 3.67× more energy than the ANN (SNN / ANN = 3.67)"
    in costlier
  )
