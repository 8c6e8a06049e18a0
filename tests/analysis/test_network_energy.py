"""Energy pricing: a layer whose input is not binary spikes costs MACs, checked by hand."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax import nn as snn
from glif_jax.analysis import network

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
