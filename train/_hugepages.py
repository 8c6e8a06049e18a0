"""Huge pages by default: the entry points re-execute themselves once with glibc's tunable.

With ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` glibc's malloc asks for transparent huge
pages (``madvise``) on the large blocks it maps, which XLA:CPU's buffers are; the MNIST
job runs faster for the same peak memory (README, "Performance"). glibc reads the tunable
only at process start, so ``python -m train.<entry>`` re-executes itself with it, before
JAX is imported, where it is safe: Linux, glibc ≥ 2.35 (the tunable's first release) and
transparent huge pages not ``[never]``. Setting ``GLIBC_TUNABLES`` yourself opts out, e.g.
``GLIBC_TUNABLES= python -m train.main ...``.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb=1"
MARKER = "GLIF_JAX_HUGETLB_REEXEC"  # set in the re-executed process: never twice
MIN_GLIBC = (2, 35)
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def hugetlb_env(
  env: Mapping[str, str], *, glibc: tuple[int, int] | None, thp: str | None
) -> dict[str, str] | None:
  """The environment to re-execute with, or ``None`` to run as we are.

  Args:
    env: the current environment.
    glibc: glibc's ``(major, minor)`` version (``None``: not glibc).
    thp: the content of ``/sys/kernel/mm/transparent_hugepage/enabled``, e.g.
      ``"always [madvise] never"`` (``None``: no such file, e.g. not Linux).

  Returns:
    ``env`` with ``GLIBC_TUNABLES`` and the marker set, where huge pages are available
    and the user has set neither; ``None`` otherwise.
  """
  if "GLIBC_TUNABLES" in env or MARKER in env:
    return None
  if glibc is None or glibc < MIN_GLIBC or thp is None or "[never]" in thp:
    return None
  return {**env, "GLIBC_TUNABLES": TUNABLE, MARKER: "1"}


def entry_module(argv: Sequence[str], orig_argv: Sequence[str]) -> str | None:
  """The module run by ``python -m <module>`` while it is being located, else ``None``.

  While ``-m`` locates a module (importing its parent packages), ``sys.argv[0]`` is
  ``"-m"``; ``sys.orig_argv`` holds the command line as typed.
  """
  if not argv or argv[0] != "-m":
    return None
  for flag, value in itertools.pairwise(orig_argv):
    if flag == "-m":
      return value
  return None


def _glibc() -> tuple[int, int] | None:
  try:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # "glibc 2.36"
  except (AttributeError, OSError, ValueError):
    return None
  major, minor = version.split(".")[:2]
  return (int(major), int(minor)) if name == "glibc" else None


def _thp() -> str | None:
  try:
    return _THP.read_text()
  except OSError:
    return None


def reexec_with_huge_pages(package: str) -> None:
  """Re-executes ``python -m <package>.<entry> ...`` with huge pages, where `hugetlb_env`
  allows; the command line is kept exactly (``sys.orig_argv``). Does nothing on import from
  anywhere else (tests, ``python -c``)."""
  module = entry_module(sys.argv, getattr(sys, "orig_argv", ()))
  if not (module or "").startswith(f"{package}.") or not sys.platform.startswith("linux"):
    return
  env = hugetlb_env(os.environ, glibc=_glibc(), thp=_thp())
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
