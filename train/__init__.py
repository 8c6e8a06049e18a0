"""Entry points: ``python -m train.main --config configs/<name>.py --workdir DIR``.

Run so, an entry point first re-executes itself once with glibc's huge pages (see
`train._hugepages`; opt out by setting ``GLIBC_TUNABLES``, e.g. empty).
"""

from train import _hugepages

_hugepages.reexec_with_huge_pages(__name__)
