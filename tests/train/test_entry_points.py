"""Every user mistake at `train.main`, `train.evaluate` and `train.analyze` ends with one line
``error: ...`` on stderr and exit status 2, no traceback (``GLIF_JAX_TRACEBACK=1`` adds it);
a full disk too, keeping the checkpoints saved before it; a workdir without a saved step is
free for the next run. Crafted files are made here.

The mistakes run in this process through `_cli.run` (absl's flags reset between them); one
of each entry point runs as ``python -m`` too, for the real status and stderr.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from absl import flags
from absl import logging as absl_logging

from configs import smoke
from glif_jax import data
from glif_jax.models import NonFiniteWeightsError
from glif_jax.training import ConfigError, checkpoints
from tests.support import files as fmt
from tests.support import launch
from tests.support.smoke import checked
from train import _cli

FLAGS = flags.FLAGS
SMOKE = ["--config", "configs/smoke.py"]
_CLUSTER_VARIABLES = ("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR", "JAX_NUM_PROCESSES")
_MAIN_FLAGS = ("config", "workdir")  # train.main's, defined when it is imported


def _env(**extra: str) -> dict[str, str]:
  env = {k: v for k, v in launch.cpu_env(1).items() if not k.startswith(_CLUSTER_VARIABLES)}
  return {**env, "PYTHONPATH": str(launch.REPO), **extra}


def _start(module: str, args: list[str], cwd: Path = launch.REPO, **env: str):
  return subprocess.Popen(
    [sys.executable, "-m", module, *args],
    cwd=cwd,
    env=_env(**env),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _run(module: str, args: list[str], cwd: Path = launch.REPO, **env: str):
  """``python -m module args``: (status, stderr, stdout)."""
  process = _start(module, args, cwd, **env)
  stdout, stderr = process.communicate(timeout=180)
  return process.returncode, stderr, stdout


def _assert_one_line(status: int, stderr: str, message: str) -> None:
  """Status 2, no traceback, and the last stderr line (after library warnings) matches."""
  assert status == 2, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and re.search(message, last), last


@contextlib.contextmanager
def _entry_point(module: str) -> Iterator[Callable[[list[str]], None]]:
  """``module``'s main with absl's flags as ``python -m module`` defines them: train.main's
  (defined when imported) are set aside while evaluate's or analyze's (defined when run) are
  in use; the flags a case added are removed after it."""
  importlib.import_module("train.main")
  entry = importlib.import_module(module)
  own = module == "train.main"
  aside = {} if own else {n: FLAGS[n] for n in FLAGS if n.split(".")[0] in _MAIN_FLAGS}
  for name in aside:
    delattr(FLAGS, name)
  before = set(FLAGS)
  if not own:
    entry._define_flags()
  try:
    yield entry.main
  finally:
    FLAGS.unparse_flags()
    for name in set(FLAGS) - before:
      delattr(FLAGS, name)
    for name, flag in aside.items():
      FLAGS[name] = flag


def _exit_now(status: int) -> None:
  raise SystemExit(status)


@pytest.fixture
def in_process(monkeypatch, capsys):
  """Runs ``python -m module args`` in this process: (status, stderr). `_cli`'s `os._exit`
  raises SystemExit instead; its hooks and the mains' log verbosity are undone after."""
  monkeypatch.setattr(os, "_exit", _exit_now)
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
  monkeypatch.chdir(launch.REPO)

  def run(module: str, args: list[str]) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", [module, *args])
    capsys.readouterr()
    with _entry_point(module) as main, pytest.raises(SystemExit) as stop:
      _cli.run(main)
    return stop.value.code, capsys.readouterr().err

  verbosity = absl_logging.get_verbosity()
  yield run
  absl_logging.set_verbosity(verbosity)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
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
  fmt.write_cifar(root / "cifar", "cifar10")  # prepared, then its prepared copy broken
  data.load("cifar10", data_dir=root / "broken", manual_dir=root / "cifar")
  (root / "broken" / "cifar10" / "1.0.0" / "dataset_info.json").write_text("garbage")
  return root


SMOKE_RUN = "train.main --config configs/smoke.py --workdir {w}/run"
SMOKE_EVALUATE = "train.evaluate --config configs/smoke.py"


def _cifar(manual: str) -> str:
  return (
    "--config.dataset=cifar10 --config.model=cnn_small"
    f" --config.manual_dir={manual} --config.data_dir={{w}}/prepared"
  )


# Each mistake: ``python -m`` of a command; {f}: the crafted files, {w}: a fresh directory.
COMMANDS = {
  "missing config file": "train.main --config {f}/nope.py --workdir {w}/run",
  "config syntax error": "train.main --config {f}/syntax.py --workdir {w}/run",
  "get_config raises": "train.main --config {f}/raises.py --workdir {w}/run",
  "bad config argument": "train.main --config configs/cifar.py:foo --workdir {w}/run",
  "workdir is a file": "train.main --config configs/smoke.py --workdir {f}/a_file",
  "workdir under a file": "train.main --config configs/smoke.py --workdir {f}/a_file/run",
  "negative seed": SMOKE_RUN + " --config.seed=-1",
  "image size 0": SMOKE_RUN + " --config.synthetic.image_size=0",
  "no classes": SMOKE_RUN + " --config.synthetic.num_classes=0",
  "nan learning rate": SMOKE_RUN + " --config.learning_rate=nan",
  "inf learning rate": SMOKE_RUN + " --config.learning_rate=inf",
  "forbidden pickle global": SMOKE_RUN + " " + _cifar("{f}/forbidden"),
  "empty tarball": SMOKE_RUN + " " + _cifar("{f}/empty"),
  "unusable prepared data": SMOKE_RUN
  + " --config.dataset=cifar10 --config.model=cnn_small --config.manual_dir={f}/cifar"
  + " --config.data_dir={f}/broken --config.batch_size=2 --config.eval_batch_size=2",
  "neuron option the config lacks": SMOKE_RUN + " --config.neuron_options.hard_reset=True",
  "batch larger than the training set": SMOKE_RUN + " --config.batch_size=1024",
  "crop padding larger than the image": SMOKE_RUN + " --config.crop_padding=9",
  "seed beyond JAX's keys": SMOKE_RUN + " --config.seed=9223372036854775808",
  "synthetic set beyond memory": SMOKE_RUN + " --config.synthetic.image_size=1000000",
  "evaluate: missing checkpoint": SMOKE_EVALUATE + " --authors-checkpoint {w}/nope.pth",
  "evaluate: not a checkpoint": SMOKE_EVALUATE + " --authors-checkpoint {f}/a_file",
  "evaluate: missing data": SMOKE_EVALUATE + " --authors-checkpoint {f}/a_file"
  " --config.dataset=mnist --config.data_dir={w}/prepared --config.manual_dir={w}",
  "analyze: no run in the workdir": "train.analyze --workdir {w}/nowhere",
}
# What the last line on stderr says (a regular expression).
MESSAGES = {
  "missing config file": r"No such file or directory: '.*nope\.py'",
  "config syntax error": r"SyntaxError in the config: invalid syntax \(syntax\.py, line 1\)",
  "get_config raises": r"RuntimeError in the config: no such recipe",
  "bad config argument": r"configs/cifar\.py:foo: .*ValueError: not enough values to unpack",
  "workdir is a file": r"cannot use workdir '.*a_file' \(File exists",
  "workdir under a file": r"cannot use workdir '.*a_file/run' \(Not a directory",
  "negative seed": "seed",
  "image size 0": r"config\.synthetic\.image_size must be > 0, got 0",
  "no classes": r"config\.synthetic\.num_classes must be > 0",
  "nan learning rate": r"config\.learning_rate must be a finite number, got nan",
  "inf learning rate": r"config\.learning_rate must be a finite number, got inf",
  "forbidden pickle global": r"builtins.*eval",
  "empty tarball": r"cifar-10-python\.tar\.gz",
  "unusable prepared data": r"broken: the prepared cifar10 cannot be read \(ParseError: .*"
  r"delete its cifar10/ directory there to rebuild it",
  "neuron option the config lacks": r"--config\.neuron_options\.hard_reset=True: the config "
  r"file sets no neuron_options\.hard_reset.*\(glif_jax\.nn\.GLIF, KLIF, LIF, PLIF\)$",
  "batch larger than the training set": r"config\.batch_size \(1024\) is larger than the "
  r"training split of synthetic \(512 examples\); set --config\.batch_size to at most 512$",
  "crop padding larger than the image": r"config\.crop_padding \(9\) is larger than the "
  r"input's side \(8 pixels\)",
  "seed beyond JAX's keys": r"config\.seed must be at most 9223372036854775807",
  "synthetic set beyond memory": r"640 images of shape \(1000000, 1000000, 1\) would take "
  r".* GiB, more than this machine's",
  "evaluate: missing checkpoint": r"nope\.pth",
  "evaluate: not a checkpoint": r"a_file: not a PyTorch zip checkpoint",
  "evaluate: missing data": r"mnist.*not found in",
  "analyze: no run in the workdir": r"nowhere/config\.json is missing",
}


def _arguments(name: str, files: Path, fresh: Path) -> tuple[str, list[str], str]:
  module, *args = COMMANDS[name].split()
  return module, [a.format(f=files, w=fresh) for a in args], MESSAGES[name]


def _fresh(root: Path, name: str) -> Path:
  fresh = root / re.sub(r"\W", "_", name)
  fresh.mkdir()
  return fresh


@pytest.mark.parametrize("name", COMMANDS)
def test_every_user_mistake_ends_in_one_line_and_status_2(name, tmp_path, files, in_process):
  module, args, message = _arguments(name, files, tmp_path)
  _assert_one_line(*in_process(module, args), message)
  assert not (tmp_path / "run" / checkpoints.CONFIG_FILE).exists(), name


REAL = ("config syntax error", "evaluate: not a checkpoint", "analyze: no run in the workdir")


@pytest.mark.slow
def test_user_mistakes_of_python_m_end_in_one_line_and_status_2(tmp_path, files):
  runs = {}
  for name in REAL:  # one of each entry point, all at once
    module, args, message = _arguments(name, files, _fresh(tmp_path, name))
    runs[name] = _start(module, args), message
  for name, (process, message) in runs.items():
    _, stderr = process.communicate(timeout=180)
    _assert_one_line(process.returncode, stderr, message)
    assert len(stderr.strip().splitlines()) == 1, (name, stderr[-3000:])


def test_an_empty_workdir_is_refused_and_nothing_is_written(tmp_path, in_process, monkeypatch):
  config = str(launch.REPO / "configs" / "smoke.py")
  monkeypatch.chdir(tmp_path)
  status, stderr = in_process("train.main", ["--config", config, "--workdir", ""])
  _assert_one_line(status, stderr, r"--workdir is empty")
  assert list(tmp_path.iterdir()) == []


def test_the_traceback_switch_shows_the_traceback_before_the_line(
  tmp_path, in_process, monkeypatch
):
  monkeypatch.setenv(_cli.TRACEBACK_VARIABLE, "1")
  args = [*SMOKE, "--workdir", str(tmp_path / "run"), "--config.seed=-1"]
  status, stderr = in_process("train.main", args)
  assert status == 2 and "Traceback (most recent call last)" in stderr
  assert stderr.strip().splitlines()[-1] == "error: config.seed must be >= 0, got -1"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_workdir_is_refused(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir(mode=0o555)
  with pytest.raises(ConfigError, match=r"cannot use workdir .*Permission denied"):
    checkpoints.guard_workdir(workdir, checked(smoke.get_config()))


@pytest.mark.parametrize(
  "error",
  [
    data.ForbiddenGlobalError("x.pkl names the global builtins.eval"),
    data.CorruptDatasetError("x.tar.gz", "no member"),
    NonFiniteWeightsError("w.pth holds NaN"),
    OSError(28, "No space left on device", "/run/checkpoints"),
  ],
)
def test_typed_library_errors_become_one_line(error, capsys, monkeypatch):
  monkeypatch.setattr(os, "_exit", _exit_now)  # a full disk's: not the end of pytest

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
  checkpoints.guard_workdir(tmp_path, checked(failed))  # a run that failed after the workdir check
  checkpoints.guard_workdir(
    tmp_path, checked(smoke.get_config())
  )  # the corrected rerun: no overwrite
  (tmp_path / checkpoints.CHECKPOINT_DIR / "16").mkdir(parents=True)  # now it holds a step
  with pytest.raises(ConfigError, match=r"different config .*learning_rate"):
    checkpoints.guard_workdir(tmp_path, checked(failed))
  assert (tmp_path / checkpoints.CHECKPOINT_DIR / "16").is_dir()


# What orbax prints at every checkpoint saved without evaluation metrics, in any run.
_UNTRACKED = re.compile(r"W\S+ \S+ \d+ checkpoint_manager\.py:\d+\] Requested `tracked_metric`.*")


@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_keeping_the_previous_checkpoint(tmp_path):
  args = [*SMOKE, "--workdir", str(tmp_path), "--config.checkpoint_every_steps=2"]
  args += ["--config.num_epochs=1", "--config.log_every_steps=100"]
  status, stderr, _ = _run("tests.train.full_disk", args)  # full after the first save
  assert status == 2, stderr[-3000:]
  *before, last = stderr.strip().splitlines()
  assert re.fullmatch(r"error: File too large \(.*\); free some space, then rerun: .*", last)
  assert len(before) <= 2 and all(_UNTRACKED.fullmatch(line) for line in before), stderr[-3000:]
  assert checkpoints.saved_steps(tmp_path) == [2]
  status, stderr, stdout = _run("train.main", args)
  assert status == 0, stderr[-3000:]
  assert "resuming at step 2 from" in stdout
  assert checkpoints.saved_steps(tmp_path)[-1] == 16


_ENDS_WITHIN_S = 30  # after the failure: orbax's threads are not waited for


def _ended(process: subprocess.Popen, timeout: float = 180) -> tuple[str, str, float]:
  """``(stdout, stderr, the time it ended)`` of ``process``, killed if it hangs."""
  try:
    stdout, stderr = process.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    process.kill()
    stdout, stderr = process.communicate()
    raise AssertionError(f"still running after {timeout} s: {stderr[-3000:]}") from None
  return stdout, stderr, time.time()


@pytest.mark.slow
@pytest.mark.parametrize(
  "mode, message",
  [
    pytest.param(
      "read-only",
      r"checkpoints/.*: Permission denied$",
      marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories"),
    ),
    ("vanished", r"checkpoints/.*: Not a directory$"),
  ],
)
def test_a_failed_save_ends_in_one_line_within_seconds(tmp_path, mode, message):
  args = [mode, *SMOKE, "--workdir", str(tmp_path), "--config.checkpoint_every_steps=2"]
  process = _start("tests.train.failing_save", [*args, "--config.num_train_steps=4"])
  stdout, stderr, ended = _ended(process)
  _assert_one_line(process.returncode, stderr, message)
  *before, _ = stderr.strip().splitlines()
  assert all(_UNTRACKED.fullmatch(line) for line in before), stderr[-3000:]  # no orbax reports
  broken = float(re.search(r"broken at (\S+)", stdout).group(1))
  assert ended - broken < _ENDS_WITHIN_S


@pytest.fixture(scope="module")
def two_at_once(tmp_path_factory):
  """Two `train.main` of the smoke config started at once on one new workdir:
  ``(workdir, [(status, stderr, seconds it ran)] by status)``."""
  workdir = tmp_path_factory.mktemp("two_at_once")
  started = time.time()
  processes = [_start("train.main", [*SMOKE, "--workdir", str(workdir)]) for _ in range(2)]
  with concurrent.futures.ThreadPoolExecutor(len(processes)) as pool:  # each end as it comes
    outcomes = list(pool.map(_ended, processes))
  ended = [
    (process.returncode, stderr, end - started)
    for process, (_, stderr, end) in zip(processes, outcomes, strict=True)
  ]
  return workdir, sorted(ended, key=lambda e: e[0])


@pytest.mark.slow
def test_a_second_run_on_a_workdir_in_use_is_refused_at_once(two_at_once):
  workdir, ((status, stderr, ran), (refused, line, waited)) = two_at_once
  assert status == 0, stderr[-3000:]
  _assert_one_line(refused, line, rf"workdir '{workdir}' is in use by another run \(process \d+")
  assert waited < ran  # at once: it never waits for the run in progress
  assert json.loads((workdir / "summary.json").read_text())["steps"] == 32


@pytest.mark.slow
def test_evaluate_never_writes_into_a_trained_workdir(two_at_once, in_process):
  workdir, _ = two_at_once
  summary = (workdir / "summary.json").read_text()
  args = [*SMOKE, "--authors-checkpoint", "nope.pth", "--workdir", str(workdir)]
  message = rf"workdir '{workdir}' holds another run \(checkpoints of steps \[16, 32\], summary"
  _assert_one_line(*in_process("train.evaluate", args), message)
  assert (workdir / "summary.json").read_text() == summary


@pytest.mark.slow
def test_analyze_refuses_a_checkpoint_that_does_not_match_its_digest(
  two_at_once, tmp_path, in_process
):
  workdir = tmp_path / "altered"
  shutil.copytree(two_at_once[0], workdir)
  latest = workdir / "checkpoints" / "32"
  shutil.rmtree(latest / "state")
  shutil.copytree(workdir / "checkpoints" / "16" / "state", latest / "state")  # step 16's arrays
  message = (
    r"checkpoint step 32 in .*altered/checkpoints is unreadable or corrupt \(.*digest mismatch"
  )
  _assert_one_line(*in_process("train.analyze", ["--workdir", str(workdir)]), message)


@pytest.mark.parametrize(
  "content, problem",
  [(None, "is missing"), ("", "is empty"), ("{garbage", "is unreadable or not JSON")],
  ids=["missing", "empty", "garbage"],
)
def test_a_workdir_with_checkpoints_and_no_readable_config_json_is_refused(
  tmp_path, in_process, content, problem
):
  (tmp_path / checkpoints.CHECKPOINT_DIR / "16").mkdir(parents=True)  # a saved step
  if content is not None:
    (tmp_path / checkpoints.CONFIG_FILE).write_text(content)
  status, stderr = in_process("train.main", [*SMOKE, "--workdir", str(tmp_path)])
  message = rf"{tmp_path}/config\.json {problem}.*steps \[16\]\): the config of its run is unknown"
  _assert_one_line(status, stderr, message)


@pytest.mark.parametrize(
  "content", [None, "", '{"dataset": "synthetic"}'], ids=["missing", "empty", "not a config"]
)
def test_analyze_names_a_missing_empty_or_garbage_config_json(tmp_path, in_process, content):
  if content is not None:
    (tmp_path / checkpoints.CONFIG_FILE).write_text(content)
  status, stderr = in_process("train.analyze", ["--workdir", str(tmp_path)])
  _assert_one_line(status, stderr, rf"{tmp_path}/config\.json (is missing|is empty|holds no)")


ENVIRONMENTS = {  # what JAX cannot run as asked: one line each, saying what to set
  "JAX_PLATFORMS": ("tpu", r"could not start the backend JAX_PLATFORMS='tpu'.*set JAX_PLATFORMS"),
  "XLA_FLAGS": ("garbage", r"XLA_FLAGS='garbage' is neither flags .*or unset it$"),
  "JAX_ENABLE_X64": ("1", r"JAX_ENABLE_X64 is set: .*; unset JAX_ENABLE_X64$"),
}


@pytest.mark.slow
def test_an_environment_jax_cannot_run_ends_in_one_line(tmp_path):
  runs = {
    name: _start("train.main", [*SMOKE, "--workdir", str(tmp_path / name)], **{name: value})
    for name, (value, _) in ENVIRONMENTS.items()
  }
  for name, process in runs.items():
    _, stderr, _ = _ended(process)
    _assert_one_line(process.returncode, stderr, ENVIRONMENTS[name][1])
