"""Every user mistake at `train.main`, `train.evaluate` and `train.analyze` ends with one line
``error: ...`` on stderr and exit status 2, no traceback (``GLIF_JAX_TRACEBACK=1`` adds it);
a full disk too, keeping the checkpoints saved before it; a workdir without a saved step is
free for the next run. Crafted files are made here.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from configs import smoke
from glif_jax import data
from glif_jax.models import NonFiniteWeightsError
from glif_jax.training import ConfigError, checkpoints
from tests.training import launch
from train import _cli

SMOKE = ["--config", "configs/smoke.py"]
_CLUSTER_VARIABLES = ("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR", "JAX_NUM_PROCESSES")


def _env(**extra: str) -> dict[str, str]:
  env = {k: v for k, v in launch.cpu_env(1).items() if not k.startswith(_CLUSTER_VARIABLES)}
  return {**env, "PYTHONPATH": str(launch.REPO), **extra}


def _run(module: str, args: list[str], cwd: Path = launch.REPO, **env: str):
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=cwd,
    env=_env(**env),
    capture_output=True,
    text=True,
    timeout=180,
    check=False,
  )


def _assert_one_line(result, message: str) -> None:
  """Status 2, no traceback, and the last stderr line (after library warnings) matches."""
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and re.search(message, last), last


@pytest.fixture(scope="module")
def files(tmp_path_factory, fmt):
  """Crafted inputs: broken config files, a file, a CIFAR tarball with a forbidden pickle
  global and an empty one."""
  root = tmp_path_factory.mktemp("files")
  (root / "syntax.py").write_text("def get_config(:\n")
  (root / "raises.py").write_text("def get_config():\n  raise RuntimeError('no such recipe')\n")
  (root / "a_file").write_text("")
  members = {"cifar-10-batches-py/data_batch_1": pickle.dumps(eval)}  # a global: builtins.eval
  (root / "forbidden").mkdir()
  fmt.write_tar(root / "forbidden" / "cifar-10-python.tar.gz", members)
  (root / "empty").mkdir()
  fmt.write_tar(root / "empty" / "cifar-10-python.tar.gz", {})
  return root


def _cifar(manual: Path, prepared: Path) -> list[str]:
  return [
    "--config.dataset=cifar10",
    "--config.model=cnn_small",
    f"--config.manual_dir={manual}",
    f"--config.data_dir={prepared}",
  ]


# (module, arguments, message); {f}: the crafted files, {w}: a fresh directory.
CASES = {
  "missing config file": (
    "train.main",
    ["--config", "{f}/nope.py", "--workdir", "{w}/run"],
    r"No such file or directory: '.*nope\.py'",
  ),
  "config syntax error": (
    "train.main",
    ["--config", "{f}/syntax.py", "--workdir", "{w}/run"],
    r"SyntaxError in the config: invalid syntax \(syntax\.py, line 1\)",
  ),
  "get_config raises": (
    "train.main",
    ["--config", "{f}/raises.py", "--workdir", "{w}/run"],
    r"RuntimeError in the config: no such recipe",
  ),
  "bad config argument": (
    "train.main",
    ["--config", "configs/cifar.py:foo", "--workdir", "{w}/run"],
    r"configs/cifar\.py:foo: .*ValueError: not enough values to unpack",
  ),
  "workdir is a file": (
    "train.main",
    [*SMOKE, "--workdir", "{f}/a_file"],
    r"cannot use workdir '.*a_file' \(File exists",
  ),
  "workdir under a file": (
    "train.main",
    [*SMOKE, "--workdir", "{f}/a_file/run"],
    r"cannot use workdir '.*a_file/run' \(Not a directory",
  ),
  "negative seed": ("train.main", [*SMOKE, "--workdir", "{w}/run", "--config.seed=-1"], "seed"),
  "image size 0": (
    "train.main",
    [*SMOKE, "--workdir", "{w}/run", "--config.synthetic.image_size=0"],
    r"config\.synthetic\.image_size must be > 0, got 0",
  ),
  "no classes": (
    "train.main",
    [*SMOKE, "--workdir", "{w}/run", "--config.synthetic.num_classes=0"],
    r"config\.synthetic\.num_classes must be > 0",
  ),
  "nan learning rate": (
    "train.main",
    [*SMOKE, "--workdir", "{w}/run", "--config.learning_rate=nan"],
    r"config\.learning_rate must be a finite number, got nan",
  ),
  "inf learning rate": (
    "train.main",
    [*SMOKE, "--workdir", "{w}/run", "--config.learning_rate=inf"],
    r"config\.learning_rate must be a finite number, got inf",
  ),
  "forbidden pickle global": (
    "train.main",
    [*SMOKE, "--workdir", "{w}/run", *_cifar(Path("{f}/forbidden"), Path("{w}/prepared"))],
    r"builtins.*eval",
  ),
  "empty tarball": (
    "train.main",
    [*SMOKE, "--workdir", "{w}/run", *_cifar(Path("{f}/empty"), Path("{w}/prepared"))],
    r"cifar-10-python\.tar\.gz",
  ),
  "evaluate: missing checkpoint": (
    "train.evaluate",
    [*SMOKE, "--authors-checkpoint", "{w}/nope.pth"],
    r"nope\.pth",
  ),
  "evaluate: not a checkpoint": (
    "train.evaluate",
    [*SMOKE, "--authors-checkpoint", "{f}/a_file"],
    r"a_file: not a PyTorch zip checkpoint",
  ),
  "evaluate: missing data": (
    "train.evaluate",
    [*SMOKE, "--authors-checkpoint", "{f}/a_file", "--config.dataset=mnist"]
    + ["--config.data_dir={w}/prepared", "--config.manual_dir={w}"],
    r"mnist.*not found in",
  ),
  "analyze: no run in the workdir": (
    "train.analyze",
    ["--workdir", "{w}/nowhere"],
    r"nowhere/config\.json: No such file or directory",
  ),
}


@pytest.mark.slow
def test_every_user_mistake_ends_in_one_line_and_status_2(tmp_path, files):
  def run(name):
    module, args, message = CASES[name]
    fresh = tmp_path / re.sub(r"\W", "_", name)
    fresh.mkdir()
    result = _run(module, [a.format(f=files, w=fresh) for a in args])
    return name, result, message, fresh

  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    for name, result, message, fresh in pool.map(run, CASES):
      _assert_one_line(result, message)
      assert not (fresh / "run" / checkpoints.CONFIG_FILE).exists() or name in (
        "forbidden pickle global",
        "empty tarball",
      ), name


@pytest.mark.slow
def test_an_empty_workdir_is_refused_and_nothing_is_written(tmp_path):
  config = str(launch.REPO / "configs" / "smoke.py")
  result = _run("train.main", ["--config", config, "--workdir", ""], cwd=tmp_path)
  _assert_one_line(result, r"--workdir is empty")
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_traceback_switch_shows_the_traceback_before_the_line(tmp_path):
  args = [*SMOKE, "--workdir", str(tmp_path / "run"), "--config.seed=-1"]
  result = _run("train.main", args, **{_cli.TRACEBACK_VARIABLE: "1"})
  assert result.returncode == 2 and "Traceback (most recent call last)" in result.stderr
  assert result.stderr.strip().splitlines()[-1] == "error: config.seed must be >= 0, got -1"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_workdir_is_refused(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir(mode=0o555)
  with pytest.raises(ConfigError, match=r"cannot use workdir .*Permission denied"):
    checkpoints.guard_workdir(workdir, smoke.get_config())


@pytest.mark.parametrize(
  "error",
  [
    data.ForbiddenGlobalError("x.pkl names the global builtins.eval"),
    data.CorruptDatasetError("x.tar.gz", "no member"),
    NonFiniteWeightsError("w.pth holds NaN"),
    OSError(28, "No space left on device", "/run/checkpoints"),
  ],
)
def test_typed_library_errors_become_one_line(error, capsys):
  def main(argv):
    raise error

  with pytest.raises(SystemExit) as stop:
    _cli._handled(main)(["prog"])
  assert stop.value.code == 2
  line = capsys.readouterr().err
  assert line.count("\n") == 1 and line.startswith("error: ")


def test_a_workdir_without_a_saved_step_is_free_for_the_next_run(tmp_path):
  failed = smoke.get_config()
  failed.learning_rate = 0.5
  checkpoints.guard_workdir(tmp_path, failed)  # a run that failed after the workdir check
  checkpoints.guard_workdir(tmp_path, smoke.get_config())  # the corrected rerun: no overwrite
  (tmp_path / checkpoints.CHECKPOINT_DIR / "16").mkdir(parents=True)  # now it holds a step
  with pytest.raises(ConfigError, match=r"different config .*learning_rate"):
    checkpoints.guard_workdir(tmp_path, failed)
  assert (tmp_path / checkpoints.CHECKPOINT_DIR / "16").is_dir()


@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_keeping_the_previous_checkpoint(tmp_path):
  args = [*SMOKE, "--workdir", str(tmp_path), "--config.checkpoint_every_steps=4"]
  full = _run("tests.reliability.full_disk", args)  # a file size limit after the first save
  assert full.returncode == 2, full.stderr[-3000:]
  last = full.stderr.strip().splitlines()[-1]
  assert re.fullmatch(r"error: File too large \(.*\); free some space, then rerun: .*", last)
  assert checkpoints.saved_steps(tmp_path) == [4]
  resumed = _run("train.main", args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "resuming at step 4 from" in resumed.stdout
  assert checkpoints.saved_steps(tmp_path)[-1] == 32
