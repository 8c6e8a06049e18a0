"""Several devices and processes (CPU subprocesses): one global batch, one loss, one writer.

The README's two-process command on 127.0.0.1 gives the run of one process with two
devices; the loss trajectory is the same on 1 device, 2 devices and 2 processes (jit or
pmap); a SIGTERM to one process stops both at the same step, and the run resumes
exactly on another process count; the smoke config learns.
"""

import json
import re
import signal
import time

import numpy as np
import pytest

from tests.support import launch

# Every test runs subprocesses; under pytest-xdist the runs of several processes share one
# worker, one at a time.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]

SMOKE = ["--config", "configs/smoke.py"]
TIMEOUT = 300
TRAJECTORY_STEPS = 10
EVERY = 4  # checkpoint interval of the interrupted run (16 steps per epoch, 32 in all)


def _summary(workdir):
  return json.loads((workdir / "summary.json").read_text())


def _final_state(workdir):
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  return steps[-1], launch.restore_state(workdir / "checkpoints" / str(steps[-1]))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
  """``configs/smoke.py`` in one process with two CPU devices."""
  workdir = tmp_path_factory.mktemp("one")
  launch.run([*SMOKE, "--workdir", str(workdir)], workdir / "log", devices=2, timeout=TIMEOUT)
  return workdir


def test_smoke_config_learns(one_process):
  summary = _summary(one_process)
  assert summary["steps"] == 32 and summary["test_accuracy"] >= 0.9  # chance: 0.25


def test_two_processes_give_the_run_of_one_process_with_two_devices(tmp_path, one_process):
  args = [*SMOKE, "--workdir", str(tmp_path), "--config.distributed=True"]
  started = time.perf_counter()
  launch.run(args, tmp_path / "log", processes=2, timeout=TIMEOUT)
  print(f"two-process smoke run: {time.perf_counter() - started:.1f} s")
  loss, expected = _summary(tmp_path)["test_loss"], _summary(one_process)["test_loss"]
  assert loss == pytest.approx(expected, rel=1e-4)
  assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1  # process 0 only
  assert "step 16: eval_loss" not in (tmp_path / "log.1").read_text()


def _trajectory(tmp_path, parallel, **options):
  log = tmp_path / f"{parallel}-{options}"
  args = [parallel, str(TRAJECTORY_STEPS)]
  output = launch.run(args, log, module="tests.support.trajectory", timeout=TIMEOUT, **options)
  return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference_trajectory(tmp_path_factory):
  """The losses of jit on one device."""
  losses = _trajectory(tmp_path_factory.mktemp("reference"), "jit", devices=1)
  assert len(losses) == TRAJECTORY_STEPS and losses[-1] < losses[0]
  return losses


@pytest.mark.parametrize(
  "parallel, options",
  [
    ("jit", {"devices": 2}),
    ("pmap", {"devices": 2}),
    ("jit", {"processes": 2}),
    ("pmap", {"processes": 2}),
  ],
  ids=["jit-2-devices", "pmap-2-devices", "jit-2-processes", "pmap-2-processes"],
)
def test_loss_trajectory_is_the_same_on_any_layout(
  tmp_path, reference_trajectory, parallel, options
):
  losses = _trajectory(tmp_path, parallel, **options)
  np.testing.assert_allclose(losses, reference_trajectory, rtol=1e-5)


def _wait_for_checkpoint(processes, workdir, log):
  deadline = time.monotonic() + TIMEOUT
  directory = workdir / "checkpoints"
  while not (directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())):
    assert all(p.poll() is None for p in processes), launch.output(log, len(processes))
    assert time.monotonic() < deadline
    time.sleep(0.05)


def test_sigterm_to_one_process_stops_both_at_one_step_and_resumes_exactly(tmp_path, one_process):
  log = tmp_path / "stopped"
  args = [*SMOKE, "--workdir", str(tmp_path), f"--config.checkpoint_every_steps={EVERY}"]
  processes = launch.start([*args, "--config.distributed=True"], log, processes=2)
  _wait_for_checkpoint(processes, tmp_path, log)
  processes[1].send_signal(signal.SIGTERM)
  assert launch.wait(processes, log, TIMEOUT) == [128 + signal.SIGTERM] * 2
  stopped = [
    int(re.search(r"stopped by SIGTERM at step (\d+);", (tmp_path / f"stopped.{i}").read_text())[1])
    for i in range(2)
  ]
  assert stopped[0] == stopped[1] < 32
  assert _final_state(tmp_path)[0] == stopped[0]
  output = launch.run(args, tmp_path / "resumed", devices=2, timeout=TIMEOUT)  # one process
  assert f"resuming at step {stopped[0]} from" in output
  (step, leaves), (_, expected) = _final_state(tmp_path), _final_state(one_process)
  assert step == 32
  for a, b in zip(leaves, expected, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert _summary(tmp_path)["test_loss"] == pytest.approx(_summary(one_process)["test_loss"], 1e-5)
