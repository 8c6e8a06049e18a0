"""Test-session set-up: a persistent XLA compilation cache for the session (the same training
steps are compiled by many tests and by the subprocesses of tests/training and tests/train;
a cache hit saves seconds each).

Tests take the backend and devices as they find them; tests that need several devices or
processes run subprocesses with their own CPU devices (`tests.support.launch`). The
helpers' asserts in `tests.support` report their values as the tests' own do.
"""

import atexit
import os
import shutil
import tempfile

import pytest

pytest.register_assert_rewrite("tests.support")

os.environ.setdefault("MPLBACKEND", "Agg")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="glif_jax_test_xla_cache_")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
