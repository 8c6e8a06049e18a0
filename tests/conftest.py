"""Test-session set-up: two host CPU devices, so pmap and sharding are testable on CPU, and a
persistent XLA compilation cache for the session (the same training steps are compiled by
many tests and by the subprocesses of tests/reliability; a cache hit saves seconds each)."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("MPLBACKEND", "Agg")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="glif_jax_test_xla_cache_")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
