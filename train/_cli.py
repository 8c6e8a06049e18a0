"""What the entry points share: a mistake of the user's ends in one line and status 2.

`run` is `absl.app.run` for ``train.main``, ``train.evaluate`` and ``train.analyze``. A bad
flag or config file, and the library's typed errors for what the user can fix
(`USER_ERRORS`: a bad config value, a workdir that cannot be used, missing, corrupt or
unsafe data, checkpoints or weights, an unreadable or unwritable file; and a full disk,
which leaves the checkpoints saved before it intact) end with ``error: <what is wrong>``
on stderr and exit status 2, without a traceback. Set ``GLIF_JAX_TRACEBACK=1`` to print
the traceback before that line. On a failed save (a full disk, a read-only, vanished or
forbidden directory) or a dead peer, orbax's reports of it from its background threads (and
TensorStore's calls into the event loop orbax closed after it) are left out: that line says
it once. Every error ends the process right after its line (`os._exit`, output flushed): the
interpreter's shutdown would wait on orbax's threads, which a failed save can leave running.
The environment is checked like input: ``XLA_FLAGS`` that are neither flags nor a file,
``JAX_ENABLE_X64``, and a ``JAX_PLATFORMS`` backend that cannot start each get one line
saying what to set.

In a run of several processes, a process whose peer died (a collective failed) ends with
one line and status 3 at once, leaving out JAX's shutdown barrier (which would wait for
the dead peer, then abort); the checkpoints saved so far stay, so a rerun resumes.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

import jax
from absl import app, flags

from glif_jax import data, training
from glif_jax.models.authors import (
  AuthorsCheckpointError,
  NonFiniteWeightsError,
  TorchCheckpointError,
)
from glif_jax.training import parallel
from glif_jax.training.config import FREE_FORM_KEYS

TRACEBACK_VARIABLE = "GLIF_JAX_TRACEBACK"
USER_ERROR_STATUS = 2
USER_ERRORS = (
  training.ConfigError,
  training.CheckpointMismatchError,
  training.CorruptCheckpointError,
  training.NonFiniteError,
  data.DatasetNotFoundError,
  data.CorruptDatasetError,
  data.ForbiddenGlobalError,
  AuthorsCheckpointError,
  NonFiniteWeightsError,
  TorchCheckpointError,
  OSError,
)
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_FULL_TEXTS = tuple(os.strerror(code) for code in _FULL)  # as TensorStore quotes them
_RESUME = "free some space, then rerun: the run resumes from its latest checkpoint"
_MAX_QUOTED = 200  # characters of a long library message quoted in the line


def _message(err: BaseException) -> str:
  """``err``'s text on one line (a KeyError's str() is a repr, and ml_collections wraps one
  in an AttributeError; absl wraps a config file's error in its flag error)."""
  while err.args and isinstance(err.args[0], BaseException):
    err = err.args[0]
  if isinstance(err, OSError) and err.strerror:
    where = f"{err.filename}: " if err.filename else ""
    text = f"{where}{err.strerror}"
    return f"{text}; {_RESUME}" if err.errno in _FULL else text
  text = err.args[0] if len(err.args) == 1 and isinstance(err.args[0], str) else str(err)
  return " ".join(text.split())


def _full_reason(text: str) -> str | None:
  """The errno text of a full disk that ``text`` quotes, if any."""
  return next((reason for reason in _FULL_TEXTS if reason in text), None)


def _full_disk(err: BaseException) -> str | None:
  """One line for an error of a write to a full disk (or past a file size limit) that a
  library raised as another type (orbax's TensorStore: ValueError); None for others."""
  text = " ".join(str(err).split())
  reason = _full_reason(text)
  return None if reason is None else f"{reason} ({text[:_MAX_QUOTED]}); {_RESUME}"


def _ends_in_one_line(err: BaseException | None) -> bool:
  """Whether ``err``, or an error it was raised from or while handling, is a failed write (an
  `OSError`: a full disk, a read-only, vanished or forbidden directory) or a dead peer's: the
  main thread gets it too and ends with one line."""
  while err is not None:
    if isinstance(err, OSError) or _full_disk(err) or parallel.peer_failure(err):
      return True
    err = err.__cause__ or err.__context__
  return False


class _OrbaxFailedSave(logging.Filter):
  """Drops orbax's reports of a save that failed (a full disk, a directory that cannot be
  written, a dead peer): the error reaches the main thread, which ends with one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    orbax = f"{os.sep}orbax{os.sep}" in record.pathname
    return not (orbax and (_ends_in_one_line(error) or _full_reason(record.getMessage())))


_ORBAX_FAILED_SAVE = _OrbaxFailedSave()


def _closed_loop_callback(unraisable) -> bool:
  """TensorStore finishing a write for an event loop that orbax closed when another write of
  the same save failed (that failure is reported on its own)."""
  frames = traceback.extract_tb(unraisable.exc_traceback)
  return (
    isinstance(unraisable.exc_value, RuntimeError)
    and str(unraisable.exc_value) == "Event loop is closed"
    and bool(frames)
    and frames[0].name == "call_soon_threadsafe"
  )


def _quiet_unraisable(hook: Callable, unraisable) -> None:
  if not _closed_loop_callback(unraisable):
    hook(unraisable)


def _quiet_failed_saves() -> None:
  """Leaves out what orbax and TensorStore print from their threads about a failed save."""
  logging.getLogger("absl").addFilter(_ORBAX_FAILED_SAVE)
  sys.unraisablehook = functools.partial(_quiet_unraisable, sys.unraisablehook)


def fail(message: str, status: int = USER_ERROR_STATUS) -> NoReturn:
  """Ends the process with ``error: <message>`` on stderr (the traceback first if asked)."""
  if os.environ.get(TRACEBACK_VARIABLE) and sys.exc_info()[0] is not None:
    traceback.print_exc()
  sys.stderr.write(f"error: {message}\n")
  sys.exit(status)


def _end_now(message: str, status: int) -> NoReturn:
  """`fail`, but leaving out the interpreter's shutdown, where JAX waits for dead peers and
  orbax's threads, after a failed save, report it once more or wait forever."""
  if os.environ.get(TRACEBACK_VARIABLE):
    traceback.print_exc()
  sys.stderr.write(f"error: {message}\n")
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)


def _summary(err: BaseException) -> str:
  """The first and last lines of ``err``'s message: ml_collections quotes the traceback of
  a config file's error between what failed and the error itself."""
  lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
  return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def _new_free_form_key(argv: list[str], err: BaseException) -> str | None:
  """One line for ``--config.neuron_options.<key>=`` (or ``data_options``) naming a key the
  config file does not set: ml_collections can only override a key whose type it knows."""
  for arg in argv:
    found = re.match(rf"--config\.({'|'.join(FREE_FORM_KEYS)})\.(\w+)=", arg)
    if found and repr(found[2]) in _message(err):
      section, key = found.groups()
      return (
        f"{arg}: the config file sets no {section}.{key}, and a flag can only change a key "
        f"the file sets (its type comes from there); set config.{section}.{key} in a config "
        f"file. {section} takes the keyword arguments of the "
        + (
          "neuron's module (glif_jax.nn.GLIF, KLIF, LIF, PLIF)"
          if section == "neuron_options"
          else "data set (glif_jax.data.load)"
        )
      )
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with a bad flag or config file reported in one line (status 2)."""
  try:
    argv = flags.FLAGS(argv)
    if "config" in flags.FLAGS:
      flags.FLAGS.config.keys()  # ml_collections defers a file's load failure to its first use
    return argv
  except (flags.Error, OSError) as err:
    fail(_summary(err))
  except Exception as err:  # noqa: BLE001 -- anything a config file's get_config raises
    fail(_new_free_form_key(argv, err) or f"{type(err).__name__} in the config: {_message(err)}")


def _check_environment() -> None:
  """One line (status 2) for an environment JAX cannot run as asked, before JAX starts."""
  xla_flags = os.environ.get("XLA_FLAGS", "").strip()
  if xla_flags and not xla_flags.startswith("--") and not os.path.isfile(xla_flags):
    fail(
      f"XLA_FLAGS={xla_flags!r} is neither flags (each starts with --) nor a file of them; "
      "set XLA_FLAGS='--flag=value ...' or unset it"
    )
  if jax.config.jax_enable_x64:
    fail(
      "JAX_ENABLE_X64 is set: glif-jax computes in float32 or bfloat16, and 64-bit mode "
      "changes the dtypes of its steps and checkpoints; unset JAX_ENABLE_X64"
    )


def _backend_failure(err: BaseException) -> str | None:
  """One line for a JAX backend that could not start (e.g. ``JAX_PLATFORMS=cuda`` without a
  GPU, where JAX fails an assertion); None for other errors."""
  frames = traceback.extract_tb(err.__traceback__)
  if not any(frame.filename.endswith("xla_bridge.py") for frame in frames):
    return None
  platforms, detail = os.environ.get("JAX_PLATFORMS", ""), _message(err)[:_MAX_QUOTED]
  return (
    f"JAX could not start the backend JAX_PLATFORMS={platforms!r} asks for "
    f"({type(err).__name__}{': ' + detail if detail else ''}); set JAX_PLATFORMS to one this "
    "machine has (e.g. cpu), or unset it to let JAX choose"
  )


def _handled(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  @functools.wraps(main)
  def handled(argv: list[str]) -> None:
    try:
      main(argv)
    except Exception as err:  # noqa: BLE001 -- every error ends the process (`_end_now`)
      if lost := parallel.peer_failure(err):
        _end_now(
          f"process {jax.process_index()} of {jax.process_count()}: {lost}",
          parallel.DISTRIBUTED_FAILURE_STATUS,
        )
      if line := _full_disk(err) or _backend_failure(err):
        _end_now(line, USER_ERROR_STATUS)
      if isinstance(err, USER_ERRORS):
        _end_now(_message(err), USER_ERROR_STATUS)
      if not os.environ.get(TRACEBACK_VARIABLE):  # a bug: its traceback, then the end
        traceback.print_exc()
      _end_now(f"{type(err).__name__} (the traceback above)", 1)

  return handled


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)` with the flags parsed and errors reported as described above."""
  _check_environment()
  _quiet_failed_saves()
  app.run(_handled(main), flags_parser=_parse_flags)
