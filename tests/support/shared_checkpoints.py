"""The GLIF authors' checkpoint fixtures (a folder beside the repository, `SHARED`), made
with their PyTorch classes, and the mark of the tests that read them."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "authors_checkpoints"
RESNET19 = SHARED / "resnet19_cifar10_t4.pth.tar"
SEW_DVS = SHARED / "sew_dvs_cifar10dvs_t16.pth"

needs_shared = pytest.mark.skipif(
  not SHARED.is_dir(), reason=f"the authors' checkpoints are not here: {SHARED} is absent"
)
