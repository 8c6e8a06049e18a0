"""Kill -9, SIGTERM and Ctrl-C during `python -m train.main`; the rerun resumes exactly."""

import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import launch

pytestmark = pytest.mark.slow  # every test runs subprocesses

REPO = Path(__file__).parents[2]
STEPS, EVERY = 48, 4  # 16 steps per epoch: evaluations at 16, 32, 48
ARGS = [
  "--config",
  "configs/smoke.py",
  f"--config.num_train_steps={STEPS}",
  f"--config.checkpoint_every_steps={EVERY}",
]
TIMEOUT = 300
# One CPU device (tests/training/test_distributed.py covers several devices and processes).
ENV = launch.cpu_env(1)


def _start(workdir: Path, log: str) -> subprocess.Popen:
  """Starts the smoke training in ``workdir``; stdout and stderr go to ``workdir/<log>``."""
  workdir.mkdir(exist_ok=True)
  with open(workdir / log, "w") as out:
    return subprocess.Popen(
      [sys.executable, "-m", "train.main", "--workdir", str(workdir), *ARGS],
      cwd=REPO,
      env=ENV,
      stdout=out,
      stderr=subprocess.STDOUT,
    )


def _run(workdir: Path, log: str) -> str:
  """Runs the smoke training to the end; returns its output."""
  process = _start(workdir, log)
  assert process.wait(TIMEOUT) == 0, (workdir / log).read_text()
  return (workdir / log).read_text()


def _steps(workdir: Path) -> list[int]:
  """The steps of the complete checkpoints (orbax renames a save's directory when done)."""
  directory = workdir / "checkpoints"
  names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
  return sorted(int(n) for n in names if n.isdigit())


def _wait_for_checkpoint(process: subprocess.Popen, workdir: Path, step: int) -> int:
  """Polls until a checkpoint at or after ``step`` exists; returns the latest step."""
  deadline = time.monotonic() + TIMEOUT
  while not (_steps(workdir) and _steps(workdir)[-1] >= step):
    assert process.poll() is None, "the run ended before it was interrupted"
    assert time.monotonic() < deadline
    time.sleep(0.02)
  return _steps(workdir)[-1]


def _final(workdir: Path) -> tuple[list[np.ndarray], dict]:
  """The arrays of the last checkpoint and the test metrics of ``summary.json``."""
  leaves = launch.restore_state(workdir / "checkpoints" / str(STEPS))
  summary = json.loads((workdir / "summary.json").read_text())
  metrics = {k: summary[k] for k in ("test_accuracy", "test_loss")}
  return leaves, metrics


def _assert_same_run(workdir: Path, reference: Path) -> None:
  leaves, metrics = _final(workdir)
  ref_leaves, ref_metrics = _final(reference)
  assert metrics == ref_metrics
  assert len(leaves) == len(ref_leaves)
  for a, b in zip(leaves, ref_leaves):
    np.testing.assert_array_equal(a, b)  # bitwise: same batches, same compiled steps


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
  workdir = tmp_path_factory.mktemp("uninterrupted")
  _run(workdir, "run.log")
  return workdir


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_at_a_random_moment_then_resume_gives_the_uninterrupted_run(
  tmp_path, uninterrupted, seed
):
  rng = random.Random(seed)
  process = _start(tmp_path, "killed.log")
  _wait_for_checkpoint(process, tmp_path, rng.randrange(EVERY, STEPS * 5 // 8, EVERY))
  time.sleep(rng.uniform(0.0, 0.2))  # mid-step, mid-save or mid-evaluation
  process.send_signal(signal.SIGKILL)
  assert process.wait(TIMEOUT) == -signal.SIGKILL
  latest = _steps(tmp_path)[-1]
  output = _run(tmp_path, "resumed.log")
  assert f"resuming at step {latest} from" in output  # the latest checkpoint was intact
  assert "unreadable or corrupt" not in output
  _assert_same_run(tmp_path, uninterrupted)


def test_sigterm_saves_the_current_step_exits_143_and_resumes(tmp_path, uninterrupted):
  process = _start(tmp_path, "stopped.log")
  seen = _wait_for_checkpoint(process, tmp_path, EVERY)
  process.send_signal(signal.SIGTERM)
  assert process.wait(TIMEOUT) == 128 + signal.SIGTERM
  output = (tmp_path / "stopped.log").read_text()
  stopped = int(re.search(r"stopped by SIGTERM at step (\d+);", output)[1])
  assert seen <= stopped < STEPS and _steps(tmp_path)[-1] == stopped
  assert f"resuming at step {stopped} from" in _run(tmp_path, "resumed.log")
  _assert_same_run(tmp_path, uninterrupted)


def test_ctrl_c_saves_the_current_step_and_raises_keyboard_interrupt(tmp_path):
  process = _start(tmp_path, "interrupted.log")
  seen = _wait_for_checkpoint(process, tmp_path, EVERY)
  process.send_signal(signal.SIGINT)
  assert process.wait(TIMEOUT) in (-signal.SIGINT, 128 + signal.SIGINT)
  output = (tmp_path / "interrupted.log").read_text()
  message = re.search(r"KeyboardInterrupt: interrupted at step (\d+); checkpoint saved", output)
  stopped = int(message[1])
  assert seen <= stopped < STEPS and _steps(tmp_path)[-1] == stopped
