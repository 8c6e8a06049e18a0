"""The entry points' huge-page re-execution: when it happens, decided by values."""

import pytest

from train import _hugepages as hp

THP_MADVISE = "always [madvise] never\n"
HUGE = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", hp.MARKER: "1"}


@pytest.mark.parametrize(
  ("env", "glibc", "thp", "expected"),
  [
    ({"PATH": "/bin"}, (2, 36), THP_MADVISE, {"PATH": "/bin", **HUGE}),
    ({}, (2, 35), "[always] madvise never", HUGE),
    ({}, (2, 34), THP_MADVISE, None),  # the tunable came with glibc 2.35
    ({}, (3, 0), "always madvise [never]", None),  # huge pages switched off
    ({}, (2, 36), None, None),  # no transparent huge pages (not Linux, old kernel)
    ({}, None, THP_MADVISE, None),  # not glibc (musl)
    ({"GLIBC_TUNABLES": ""}, (2, 36), THP_MADVISE, None),  # the user's opt-out
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, (2, 36), THP_MADVISE, None),
    ({hp.MARKER: "1"}, (2, 36), THP_MADVISE, None),  # already re-executed once
  ],
)
def test_hugetlb_env(env, glibc, thp, expected):
  assert hp.hugetlb_env(env, glibc=glibc, thp=thp) == expected


@pytest.mark.parametrize(
  ("argv", "orig_argv", "expected"),
  [
    (["-m"], ["python", "-m", "train.main", "--workdir", "w"], "train.main"),
    (["-m"], ["python", "-u", "-X", "dev", "-m", "train.analyze"], "train.analyze"),
    (["/x/pytest", "tests"], ["python", "-m", "pytest", "tests"], None),  # pytest imports
    (["-c"], ["python", "-c", "import train.main"], None),
    ([], [], None),
  ],
)
def test_entry_module(argv, orig_argv, expected):
  assert hp.entry_module(argv, orig_argv) == expected
