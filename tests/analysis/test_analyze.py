"""`python -m train.analyze`: a report of a (checkpointed, untrained) smoke run."""

import jax.numpy as jnp
import pytest

pytest.importorskip("orbax.checkpoint")
from configs import smoke
from glif_jax.training import (
  checkpoints,
  create_model,
  create_train_state,
  input_pipeline,
  make_tx,
)
from train import analyze


@pytest.fixture
def workdir(tmp_path):
  config = smoke.get_config()
  config.synthetic.train_size = config.synthetic.test_size = 32
  checkpoints.guard_workdir(tmp_path, config)
  _, info = input_pipeline.load(config)
  model = create_model(config, info, bn_axis_name=None)
  _, state = create_train_state(model, make_tx(config, 1, 2))
  manager = checkpoints.checkpoint_manager(tmp_path, max_to_keep=2)
  for step in (1, 2):
    state = state._replace(step=jnp.int32(step))
    checkpoints.save(manager, state, checkpoints.DataPosition(0, step), eval_accuracy=0.5)
  manager.wait_until_finished()
  manager.close()
  return tmp_path


def test_report_writes_markdown_and_figures(workdir):
  path = analyze.report(workdir, workdir / "analysis", batch_size=8)
  text = path.read_text()
  assert "Checkpoint step 2; 8 test examples" in text
  assert "| `stem_neuron` |" in text and "(input not binary: MACs)" in text and "SOPs" in text
  for name in ("firing_rates", "raster", "gates", "gate_evolution"):
    figure = workdir / "analysis" / f"{name}.png"
    assert figure.stat().st_size > 1000 and f"({name}.png)" in text
