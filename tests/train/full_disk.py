"""``python -m tests.train.full_disk <train.main flags>``: `train.main` on a disk that
is full from its second checkpoint on.

The first checkpoint is saved as usual; before each later save the file size limit
(``RLIMIT_FSIZE``, honoured for root too) drops to `LIMIT` bytes, so the kernel refuses
the checkpoint's larger files (``EFBIG``, with ``SIGXFSZ`` ignored) as a full disk
refuses them (``ENOSPC``).
"""

import functools
import resource
import runpy
import signal

from glif_jax.training import checkpoints

LIMIT = 4096  # bytes: below a checkpoint's metadata files


def _full_after_first(save, manager, *args, **kwargs):
  manager.wait_until_finished()  # the first checkpoint is complete
  if manager.all_steps():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
  return save(manager, *args, **kwargs)


if __name__ == "__main__":
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
  checkpoints.save = functools.partial(_full_after_first, checkpoints.save)
  runpy.run_module("train.main", run_name="__main__", alter_sys=True)
