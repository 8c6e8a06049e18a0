"""The two layouts of `glif_jax.training.parallel`, each on this process's devices.

Several devices and processes: `test_distributed.py` (the same loss on every layout).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glif_jax.training import parallel

D = jax.local_device_count()


def test_layout_of_a_mode_is_its_class():
  assert type(parallel.Layout("jit")) is parallel.JitLayout
  assert type(parallel.Layout("pmap")) is parallel.PmapLayout
  assert parallel.JitLayout().axis_name is None
  assert parallel.PmapLayout().axis_name == parallel.PMAP_AXIS
  with pytest.raises(ValueError, match=r"must be one of \('jit', 'pmap'\), got 'vmap'"):
    parallel.Layout("vmap")


def _mean_step(state, batch, *, axis_name):
  """state + the batch mean of ``x`` (over the devices' axis when there is one)."""
  mean = jnp.mean(batch["x"])
  if axis_name is not None:
    mean = jax.lax.pmean(mean, axis_name)
  return jax.tree.map(lambda w: w + mean, state)


@pytest.mark.parametrize("mode", parallel.PARALLEL_MODES)
def test_a_step_sees_the_global_batch_and_returns_one_host_state(mode):
  layout = parallel.Layout(mode)
  rows = np.arange(4.0 * D).reshape(4 * D, 1)  # mean (4D - 1) / 2
  batch = layout.batch({"x": rows[layout.rows(4 * D)]}, 4 * D)
  step = layout.compile(_mean_step)
  out = layout.host(step(layout.state({"w": np.float32(10.0)}), batch))
  np.testing.assert_allclose(out["w"], 10.0 + (4 * D - 1) / 2)
  assert np.shape(out["w"]) == ()  # one copy, not one per device
  saved = layout.checkpointable(layout.state({"w": np.float32(1.0)}))
  assert saved["w"].sharding.is_fully_replicated and saved["w"].shape == ()
