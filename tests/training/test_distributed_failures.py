"""Two processes on 127.0.0.1 that disagree or fail: a clear line, a bounded wait, nothing lost.

Different configs stop both processes before anything is built (status 2, the differing
keys and each process's value, nothing written); a process whose peer never starts, or
dies, ends with one line and status 3 within ``config.distributed_timeout`` (`TIMEOUT_S`
here, `ALONE_TIMEOUT_S` for a process alone, not its default); the checkpoints saved before a
death stay and the rerun resumes. The runs are of one epoch (16 steps) to keep them short.
"""

import time
from pathlib import Path

import pytest

from glif_jax.training import checkpoints
from tests.support import launch

# Under pytest-xdist the runs of several processes share one worker, one at a time.
pytestmark = pytest.mark.xdist_group("processes")
TIMEOUT_S = 10  # two processes started together meet within it, on a loaded machine too
ALONE_TIMEOUT_S = 3
SMOKE = ["--config", "configs/smoke.py", "--config.num_epochs=1"]
DISTRIBUTED = ["--config.distributed=True", f"--config.distributed_timeout={TIMEOUT_S}"]
WAIT = 300  # seconds a test waits for its processes at most


def _lines(log, i):
  return Path(f"{log}.{i}").read_text().strip().splitlines()


def _last_line(log, i):
  return _lines(log, i)[-1]


@pytest.mark.slow
def test_processes_with_different_configs_stop_before_building_anything(tmp_path):
  log, workdir = tmp_path / "log", tmp_path / "run"
  other = ["--config.learning_rate=0.02", "--config.width=8"]
  args = [*SMOKE, *DISTRIBUTED, "--workdir", str(workdir)]
  processes = launch.start(args, log, processes=2, extra_args={1: other})
  assert launch.wait(processes, log, WAIT) == [2, 2]
  for i in range(2):
    assert _last_line(log, i) == (
      "error: the processes of this run have different configs (learning_rate: process 0 "
      "0.01, process 1 0.02; width: process 0 4, process 1 8); start every process with "
      "the same config and glif-jax version"
    )
    assert "Traceback" not in Path(f"{log}.{i}").read_text()
  assert not workdir.exists()


@pytest.mark.slow
def test_a_process_whose_coordinator_never_starts_stops_with_one_line(tmp_path):
  log = tmp_path / "log"
  alone = ["--config.distributed=True", f"--config.distributed_timeout={ALONE_TIMEOUT_S}"]
  args = [*SMOKE, *alone, "--workdir", str(tmp_path / "run")]
  started = time.monotonic()
  (alone,) = launch.start(args, log, processes=2, only=[1])
  assert alone.wait(WAIT) == 3
  elapsed = time.monotonic() - started
  print(f"process 1 alone: the error after {elapsed:.1f} s (timeout {ALONE_TIMEOUT_S} s)")
  lines = _lines(log, 1)
  assert lines[0].startswith("process 1 of 2: waiting for the coordinator at 127.0.0.1:")
  assert lines[-1].startswith("error: process 1 of 2: no coordinator (process 0) answered at")
  assert f"within {ALONE_TIMEOUT_S} s" in lines[-1] and len(lines) == 2
  assert ALONE_TIMEOUT_S <= elapsed < ALONE_TIMEOUT_S + 30  # start-up (imports) included


def _wait_for_checkpoint(processes, workdir, log):
  deadline = time.monotonic() + WAIT
  while not checkpoints.saved_steps(workdir):
    assert all(p.poll() is None for p in processes), launch.output(log, len(processes))
    assert time.monotonic() < deadline
    time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_of_one_process_stops_the_other_with_one_line_and_the_rerun_resumes(tmp_path):
  log, workdir = tmp_path / "log", tmp_path / "run"
  args = [*SMOKE, "--workdir", str(workdir), "--config.checkpoint_every_steps=4"]
  processes = launch.start([*args, *DISTRIBUTED], log, processes=2)
  _wait_for_checkpoint(processes, workdir, log)
  processes[1].kill()
  killed = time.monotonic()
  assert processes[0].wait(WAIT) == 3
  elapsed = time.monotonic() - killed
  print(f"kill -9 of process 1: process 0 stopped {elapsed:.1f} s later")
  assert elapsed < TIMEOUT_S + 5  # a collective fails at once; else the heartbeat's timeout
  last = _last_line(log, 0)
  assert last.startswith("error: process 0 of 2: lost contact with another process")
  assert last.endswith(
    "rerun every process with the same --workdir to resume from the latest checkpoint"
  )
  assert "Traceback" not in launch.output(log, 1)
  step = checkpoints.saved_steps(workdir)[-1]
  output = launch.run(args, tmp_path / "resumed", devices=2, timeout=WAIT)  # one process
  assert f"resuming at step {step} from" in output
  assert checkpoints.saved_steps(workdir)[-1] == 16
