"""Hostile files for the readers' tests: decompression bombs (zip and tar entries of zero
bytes), and `refused`, which attempts a load in a fresh subprocess and checks that it is
refused before it inflates: a short message naming the entry, at a peak memory within
`SLACK_MB` of the peak after importing the reader. Bombs refused whatever their size are of
`BOMB` bytes: more than that margin, so that inflating one would break it."""

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

MiB, GiB = 2**20, 2**30
SLACK_MB = 100
BOMB = 128 * MiB
MAX_MESSAGE = 400  # a path, a short reason and the entry's name

# Runs `module.function(*argv)` in a fresh interpreter and prints its peak RSS after the
# import and after the call, the seconds the call took and what it raised.
PROBE = """
import json, resource, sys, time
from {module} import {function} as call
imported_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
try:
  call(*sys.argv[1:])
  outcome = "ok"
except Exception as e:
  outcome = f"{{type(e).__name__}}: {{e}}"
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
seconds = time.perf_counter() - start
result = {{"imported_mb": imported_mb, "rss_mb": rss_mb, "s": seconds, "outcome": outcome}}
print(json.dumps(result))
"""


def probe(module: str, function: str, *args) -> dict:
  code = PROBE.format(module=module, function=function)
  out = subprocess.run(
    [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True
  )
  return json.loads(out.stdout.splitlines()[-1])


def refused(module: str, function: str, *args, error: str, names: str) -> dict:
  """Attempts the load in a subprocess: refused with ``error`` naming ``names``, briefly,
  within `SLACK_MB` of the peak after the import."""
  result = probe(module, function, *args)
  print(f"\n{function}({Path(str(args[0])).name}): {result}")  # the report's numbers
  assert result["outcome"].startswith(f"{error}: "), result["outcome"]
  assert names in result["outcome"] and len(result["outcome"]) < MAX_MESSAGE
  assert result["rss_mb"] < result["imported_mb"] + SLACK_MB
  return result


def write_zeros(f, size: int, chunk: int = 4 * MiB) -> None:
  zeros = bytes(chunk)
  for start in range(0, size, chunk):
    f.write(zeros[: min(chunk, size - start)])


def zip_bomb(path: Path, name: str, size: int, *, mode: str = "a") -> None:
  """Appends entry ``name`` of ``size`` zero bytes (deflated: ~1 MB per GiB)."""
  with (
    zipfile.ZipFile(path, mode, zipfile.ZIP_DEFLATED) as z,
    z.open(name, "w", force_zip64=size >= 2 * GiB) as f,
  ):
    write_zeros(f, size)


class Zeros:
  """A file of zero bytes, for `tarfile.TarFile.addfile`."""

  def read(self, n: int) -> bytes:
    return bytes(n)


def tar_bomb(path: Path, name: str, size: int) -> None:
  with tarfile.open(path, "w:gz", compresslevel=1) as tar:
    info = tarfile.TarInfo(name)
    info.size = size
    tar.addfile(info, Zeros())
