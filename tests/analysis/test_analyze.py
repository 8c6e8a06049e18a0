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
from tests.support.smoke import checked
from train import analyze


@pytest.fixture
def workdir(tmp_path):
  config = smoke.get_config()
  config.synthetic.train_size = config.synthetic.test_size = 32
  config = checked(config)
  checkpoints.guard_workdir(tmp_path, config)
  splits, info = input_pipeline.load(config)
  per_epoch = input_pipeline.steps_per_epoch(splits["train"], config)
  model = create_model(config, info, bn_axis_name=None)
  _, state = create_train_state(model, make_tx(config, per_epoch, 2 * per_epoch))
  manager = checkpoints.checkpoint_manager(tmp_path, max_to_keep=2)
  for step in (1, 2):  # a checkpoint's data position is its step's
    state = state._replace(step=jnp.int32(step))
    position = checkpoints.DataPosition(*divmod(step, per_epoch))
    checkpoints.save(manager, state, position, eval_accuracy=0.5)
  manager.wait_until_finished()
  manager.close()
  return tmp_path


def test_report_writes_markdown_and_figures(workdir):
  path = analyze.report(workdir, workdir / "analysis", batch_size=8)
  text = path.read_text()
  assert "Checkpoint step 2; 8 test examples" in text
  assert "| `stem_neuron` |" in text and "(input not binary: MACs)" in text and "SOPs" in text
  assert " µJ, ANN " in text and "energy than the ANN (" in text  # both numbers, in words
  assert "GLIF gates moved from initialisation by 0.0000" in text  # untrained: not at all
  for name in ("firing_rates", "spike_maps", "gates", "gate_evolution"):
    figure = workdir / "analysis" / f"{name}.png"
    assert figure.stat().st_size > 1000 and f"({name}.png)" in text


def test_gate_history_has_a_point_per_logged_step_and_a_resumed_step_once(tmp_path):
  from tensorboardX import SummaryWriter  # what the training loop's log action writes with

  run = [(0, 0.50), (4, 0.52)]
  rerun = [(4, 0.53), (8, 0.55)]  # resumed from a checkpoint of step 0: step 4 again
  for suffix, points in ((".1", run), (".2", rerun)):  # files sort by time, then suffix
    writer = SummaryWriter(str(tmp_path), filename_suffix=suffix)
    for step, value in points:
      writer.add_scalar("gate/blocks/0/neuron/alpha", value, step)
      writer.add_scalar("gate/stem_neuron/beta", 0.6, step)
    writer.close()
  steps, gates = analyze._gate_history(tmp_path)
  assert steps.tolist() == [0, 4, 8]
  assert set(gates) == {"blocks/0/neuron", "stem_neuron"}
  assert gates["blocks/0/neuron"]["alpha"][:, 0].tolist() == pytest.approx([0.50, 0.53, 0.55])
  assert gates["stem_neuron"]["beta"].shape == (3, 1)
