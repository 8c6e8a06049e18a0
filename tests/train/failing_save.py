"""``python -m tests.train.failing_save MODE <train.main flags>``: `train.main` whose
checkpoint directory cannot be written from its second save on.

The first checkpoint is saved as usual; before the next save, MODE ``read-only`` makes
``checkpoints/`` read-only (root writes anyway: for other users only), ``vanished``
deletes it and puts a file in its place. The time of the break (seconds since the epoch)
is printed as ``broken at <time>``.
"""

import functools
import runpy
import shutil
import sys
import time
from pathlib import Path

from glif_jax.training import checkpoints


def _read_only(directory: Path) -> None:
  directory.chmod(0o555)


def _vanished(directory: Path) -> None:
  shutil.rmtree(directory)
  directory.touch()


BREAKS = {"read-only": _read_only, "vanished": _vanished}


def _broken_after_first(save, brk, manager, *args, **kwargs):
  manager.wait_until_finished()  # the first checkpoint is complete
  if manager.all_steps():
    brk(Path(manager.directory))
    print(f"broken at {time.time()}", flush=True)
  return save(manager, *args, **kwargs)


if __name__ == "__main__":
  brk = BREAKS[sys.argv.pop(1)]
  checkpoints.save = functools.partial(_broken_after_first, checkpoints.save, brk)
  runpy.run_module("train.main", run_name="__main__", alter_sys=True)
