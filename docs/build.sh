#!/usr/bin/env bash
# Build the documentation site strictly (warnings are errors, every tutorial executed),
# then check the built HTML. Offline: nothing is downloaded. Needs `pip install -e ".[docs]"`.
#   bash docs/build.sh            # -> docs/_build/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
# A fresh environment every time: Sphinx does not repeat an unchanged page's warnings.
rm -rf docs/_build/html docs/_build/doctrees docs/_build/jupyter_execute
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" PYDEVD_DISABLE_FILE_VALIDATION=1
start=$(date +%s)
python -m sphinx -W --keep-going -b html docs docs/_build/html
echo "docs/build.sh: built in $(( $(date +%s) - start )) s"
python docs/check_site.py docs/_build/html
