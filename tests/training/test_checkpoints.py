"""Checkpoints: corrupt ones are reported and skipped, other models' refused, workdirs kept."""

import errno
import json
import logging
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import smoke
from glif_jax import data
from glif_jax.training import (
  CheckpointMismatchError,
  ConfigError,
  CorruptCheckpointError,
  DataPosition,
  TrainState,
  checkpoints,
  create_model,
  create_train_state,
  make_tx,
)
from tests.support.smoke import checked

STEPS = (2, 4, 6)
# A failed orbax restore leaves TensorStore callbacks to an event loop it has closed.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _state(step, width=3):
  """A small TrainState whose every array depends on ``step``."""
  value = lambda *shape: jnp.full(shape, float(step), jnp.float32)
  return TrainState(
    jnp.int32(step),
    {"conv": {"kernel": value(2, width)}, "bias": value(width)},
    {"mean": value(width)},
    ({"count": jnp.int32(step), "mu": {"conv": {"kernel": value(2, width)}}},),
  )


def _manager(workdir):
  return checkpoints.checkpoint_manager(workdir, max_to_keep=len(STEPS))


@pytest.fixture
def workdir(tmp_path):
  """A workdir of the smoke config holding checkpoints of `STEPS`."""
  checkpoints.guard_workdir(tmp_path, checked(smoke.get_config()))
  with _manager(tmp_path) as manager:
    for step in STEPS:
      checkpoints.save(manager, jax.device_get(_state(step)), DataPosition(0, step))
  return tmp_path


def _restore(workdir, target=None):
  with _manager(workdir) as manager:
    return checkpoints.restore_latest(manager, _state(0) if target is None else target)


def _data_files(step_dir):
  return [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]


def _truncate(step_dir):
  for path in _data_files(step_dir):
    path.write_bytes(path.read_bytes()[:8])


def _garbage(step_dir):
  for path in _data_files(step_dir):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _delete_state(step_dir):
  shutil.rmtree(step_dir / "state")


def _garbage_metadata(step_dir):
  (step_dir / "state" / "_METADATA").write_text("{not json")


def _arrays_of_another_step(step_dir):
  """Readable and well-formed, but not the arrays that were saved: only the digest tells."""
  shutil.rmtree(step_dir / "state")
  shutil.copytree(step_dir.parent / str(STEPS[0]) / "state", step_dir / "state")


@pytest.mark.parametrize(
  "corrupt", [_truncate, _garbage, _delete_state, _garbage_metadata, _arrays_of_another_step]
)
def test_corrupt_latest_checkpoint_is_reported_moved_and_the_previous_used(
  workdir, corrupt, caplog
):
  corrupt(workdir / "checkpoints" / str(STEPS[-1]))
  with caplog.at_level(logging.WARNING):
    state, position = _restore(workdir)
  assert int(state.step) == STEPS[-2] and position == DataPosition(0, STEPS[-2])
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(_state(STEPS[-2])), strict=True):
    np.testing.assert_array_equal(got, want)
  warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert f"checkpoint step {STEPS[-1]} in {workdir / 'checkpoints'} is unreadable" in warning
  assert "Error" in warning  # the problem, e.g. "ValueError: ... digest mismatch"
  (moved,) = (workdir / checkpoints.CORRUPT_DIR).iterdir()
  assert moved.name.startswith(f"{STEPS[-1]}-")
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == list(STEPS[:-1])


def test_a_resumed_run_can_save_the_step_of_a_moved_checkpoint(workdir):
  _truncate(workdir / "checkpoints" / str(STEPS[-1]))
  with _manager(workdir) as manager:
    checkpoints.restore_latest(manager, _state(0))
    checkpoints.save(manager, jax.device_get(_state(STEPS[-1])), DataPosition(1, 0))
  state, position = _restore(workdir)
  assert int(state.step) == STEPS[-1] and position == DataPosition(1, 0)


def test_no_intact_checkpoint_raises_and_moves_nothing(workdir):
  for step in STEPS:
    _truncate(workdir / "checkpoints" / str(step))
  with pytest.raises(CorruptCheckpointError, match=r"step 6: .*step 4: .*step 2: .*afresh"):
    _restore(workdir)
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == list(STEPS)
  assert not (workdir / checkpoints.CORRUPT_DIR).exists()


def test_unfinished_save_of_a_killed_run_is_ignored_and_cleaned_up(workdir):
  # Orbax writes into "<step>.orbax-checkpoint-tmp-<id>" and renames it when complete; a
  # kill in between leaves that directory behind.
  unfinished = workdir / "checkpoints" / "8.orbax-checkpoint-tmp-1234"
  shutil.copytree(workdir / "checkpoints" / "6", unfinished)
  _truncate(unfinished)
  state, _ = _restore(workdir)
  assert int(state.step) == 6
  assert not unfinished.exists()


@pytest.mark.parametrize(
  "target, message",
  [
    (_state(0, width=5), r"params\.bias: checkpoint \(3,\) float32, model \(5,\) float32"),
    (_state(0)._replace(rest={"mean": jnp.zeros(3), "var": jnp.zeros(3)}), r"rest\.var: only in"),
    (_state(0)._replace(params={"bias": jnp.zeros(3)}), r"params\.conv\.kernel: only in the check"),
    (
      _state(0)._replace(rest={"mean": jnp.zeros(3, jnp.bfloat16)}),
      r"rest\.mean: checkpoint \(3,\) float32, model \(3,\) bfloat16",
    ),
  ],
)
def test_checkpoint_of_another_model_is_refused_naming_the_leaf(workdir, target, message):
  with pytest.raises(CheckpointMismatchError, match=message):
    _restore(workdir, target)
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == list(STEPS)


def test_checkpoint_of_another_width_is_refused_even_without_config_json(tmp_path):
  # config.json gone, so the workdir guard cannot tell; the restore must.
  def abstract_state(width):
    config = smoke.get_config()
    config.width = width
    model = create_model(checked(config), data.info("synthetic", num_classes=4), bn_axis_name=None)
    return create_train_state(model, make_tx(checked(config), 4, 8))[1]

  saved = jax.eval_shape(lambda: abstract_state(4))  # shapes only: nothing is compiled
  with _manager(tmp_path) as manager:
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), saved)
    checkpoints.save(manager, zeros, DataPosition(0, 0))
  message = (
    r"differ: params\.classifier\.head\.kernel\.value: checkpoint \(32, 4\) float32, "
    r"model \(48, 4\) float32"
  )
  with pytest.raises(CheckpointMismatchError, match=message):
    _restore(tmp_path, jax.eval_shape(lambda: abstract_state(6)))


def _tree_bytes(directory):
  return {
    str(p.relative_to(directory)): p.read_bytes()
    for p in sorted(directory.rglob("*"))
    if p.is_file()
  }


def test_workdir_of_another_config_is_refused_and_left_untouched(workdir):
  checkpoints.guard_workdir(workdir, checked(smoke.get_config()))
  before = _tree_bytes(workdir)
  changed = smoke.get_config()
  changed.timesteps = 3
  with pytest.raises(ValueError, match=r"different config .*\['timesteps'\].*overwrite=True"):
    checkpoints.guard_workdir(workdir, checked(changed))
  assert _tree_bytes(workdir) == before


def test_run_control_keys_may_change_and_overwrite_discards_only_when_asked(workdir):
  config = smoke.get_config()
  checkpoints.guard_workdir(workdir, checked(config))
  config.nonfinite, config.max_to_keep, config.log_every_steps = "abort", 7, 1
  checkpoints.guard_workdir(workdir, checked(config))  # same computation: accepted, kept
  assert (workdir / "checkpoints" / "6").is_dir()
  config.learning_rate, config.overwrite = 0.5, True
  checkpoints.guard_workdir(workdir, checked(config))
  assert not (workdir / "checkpoints").exists()
  assert json.loads((workdir / "config.json").read_text())["learning_rate"] == 0.5


def test_digest_depends_on_every_leaf():
  base = checkpoints.state_digest(jax.device_get(_state(1)))
  assert base == checkpoints.state_digest(jax.device_get(_state(1)))
  for i in range(len(jax.tree.leaves(_state(1)))):
    leaves, treedef = jax.tree.flatten(jax.device_get(_state(1)))
    leaves[i] = np.asarray(leaves[i]).copy()
    leaves[i].reshape(-1)[0] += 1
    assert checkpoints.state_digest(jax.tree.unflatten(treedef, leaves)) != base


@pytest.mark.slow
def test_a_second_process_on_a_workdir_is_refused_at_once(tmp_path):
  checkpoints.lock_workdir(tmp_path)
  lock = tmp_path / f"{checkpoints.LOCK_FILE}.0"
  other = f"from glif_jax.training import checkpoints; checkpoints.lock_workdir({str(tmp_path)!r})"
  refused = subprocess.run(
    [sys.executable, "-c", other], check=False, capture_output=True, text=True
  )
  message = f"workdir '{tmp_path}' is in use by another run (process {os.getpid()} holds {lock})"
  assert refused.returncode == 1 and message in refused.stderr
  checkpoints.lock_workdir(tmp_path)  # this process again: a no-op
  checkpoints.unlock_workdir(tmp_path)
  subprocess.run([sys.executable, "-c", other], check=True)  # free; and it died with the process
  subprocess.run([sys.executable, "-c", other], check=True)


@pytest.mark.parametrize(
  "content, problem",
  [
    (None, r"is missing"),
    ("", r"is empty"),
    ("{garbage", r"is unreadable or not JSON \(JSONDecodeError"),
    ('{"a": 1}', r"holds no training config \(no keys \['dataset', "),
  ],
  ids=["missing", "empty", "garbage", "not a config"],
)
def test_a_workdir_with_checkpoints_and_no_readable_config_is_refused(workdir, content, problem):
  path = workdir / checkpoints.CONFIG_FILE
  path.unlink()
  if content is not None:
    path.write_text(content)
  config = smoke.get_config()
  with pytest.raises(ConfigError, match=rf"{path} {problem}.*steps \[2, 4, 6\].*unknown"):
    checkpoints.guard_workdir(workdir, checked(config))
  assert checkpoints.saved_steps(workdir) == list(STEPS)
  config.overwrite = True
  checkpoints.guard_workdir(workdir, checked(config))
  assert checkpoints.saved_steps(workdir) == []
  assert checkpoints.read_config(workdir)["learning_rate"] == config.learning_rate


def test_config_json_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
  checkpoints.guard_workdir(tmp_path, checked(smoke.get_config()))
  before = (tmp_path / checkpoints.CONFIG_FILE).read_text()

  def full_disk(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(os, "fsync", full_disk)
  changed = smoke.get_config()
  changed.learning_rate = 0.5  # no saved step: the workdir is taken over
  with pytest.raises(OSError, match="No space left"):
    checkpoints.guard_workdir(tmp_path, checked(changed))
  assert (tmp_path / checkpoints.CONFIG_FILE).read_text() == before
  assert [p.name for p in tmp_path.iterdir()] == [checkpoints.CONFIG_FILE]


def test_a_data_position_not_of_its_step_is_reported_and_the_previous_used(workdir, caplog):
  position = workdir / "checkpoints" / str(STEPS[-1]) / "position" / "metadata"
  position.write_text(json.dumps({"epoch": 2, "batch": STEPS[-1]}))  # epoch 0 was saved
  with caplog.at_level(logging.WARNING), _manager(workdir) as manager:
    state, saved = checkpoints.restore_latest(manager, _state(0), steps_per_epoch=8)
  assert int(state.step) == STEPS[-2] and saved == DataPosition(0, STEPS[-2])
  assert "data position (epoch 2, batch 6) is not that of step 6 at 8 steps" in caplog.text


def test_restore_step_refuses_a_checkpoint_that_does_not_match_its_digest(workdir):
  _arrays_of_another_step(workdir / "checkpoints" / str(STEPS[-1]))
  with _manager(workdir) as manager, pytest.raises(CorruptCheckpointError, match="digest"):
    checkpoints.restore_step(manager, STEPS[-1], _state(0))
  with _manager(workdir) as manager:
    state, position = checkpoints.restore_step(manager, STEPS[-2], _state(0), steps_per_epoch=8)
  assert int(state.step) == STEPS[-2] and position == DataPosition(0, STEPS[-2])
