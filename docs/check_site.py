"""Check the built HTML site: tutorial figures, API pages, nothing fetched from the web.

Run after the build (``docs/build.sh`` does)::

    python docs/check_site.py docs/_build/html

Checks, each failure printed on one line, exit status 1 if any:

- every tutorial page (``tutorials/*.html``, one per ``docs/tutorials/*.md``) exists and
  carries at least one figure, and every ``<img>`` on it is inline data or a file that
  exists in the site;
- an API page for each public module, with a documented entry (an HTML anchor) for every
  name in the module's ``__all__``;
- no page or stylesheet loads a script, stylesheet, font or image from another host;
- the config reference names every key of ``default_config`` and the flag reference every
  flag of ``train.main``, ``train.evaluate`` and ``train.analyze`` (``_reference.py``);
- no page names an internal work item ("issue 1" and a digit);
- every Python block of a how-to or the FAQ runs in the build or says why it cannot;
- ``CITATION.cff`` is valid CFF 1.2 (required keys, known keys, value types), its version is
  the package's, and the README's BibTeX is the one generated from it.
"""

import importlib
import pathlib
import re
import sys
from urllib.parse import unquote, urlsplit

DOCS = pathlib.Path(__file__).resolve().parent
PUBLIC_MODULES = ("neurons", "surrogates", "nn", "models", "data", "training", "analysis")
# analysis re-exports its submodules' names; they are documented in the submodules
ANALYSIS_SUBMODULES = ("dynamics", "network", "plots", "figures", "report", "nir_export")

_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]*)\"", re.IGNORECASE)
_REMOTE_TAG = re.compile(
  r"<(?:script|img|iframe|source)\b[^>]*?\bsrc=\"(?:https?:)?//|"
  r"<link\b[^>]*?\brel=\"(?:stylesheet|preload|icon|shortcut icon)\"[^>]*?\bhref=\"(?:https?:)?//|"
  r"<link\b[^>]*?\bhref=\"(?:https?:)?//[^\"]*\"[^>]*?\brel=\"(?:stylesheet|preload|icon)\"",
  re.IGNORECASE,
)
_REMOTE_CSS = re.compile(r"(?:@import\s+(?:url\()?|url\()\s*[\"']?(?:https?:)?//", re.IGNORECASE)


def check_tutorials(site: pathlib.Path) -> list[str]:
  problems = []
  sources = sorted((DOCS / "tutorials").glob("*.md"))
  if not sources:
    problems.append("no tutorials found under docs/tutorials/")
  for source in sources:
    page = site / "tutorials" / f"{source.stem}.html"
    if not page.exists():
      problems.append(f"{page.relative_to(site)}: missing (tutorial {source.name} not built)")
      continue
    html = page.read_text(encoding="utf-8")
    figures = 0
    for src in _IMG.findall(html):
      if src.startswith("data:image/"):
        figures += 1
        continue
      parts = urlsplit(src)
      if parts.scheme or parts.netloc:
        problems.append(f"{page.relative_to(site)}: remote image {src}")
        continue
      target = (page.parent / unquote(parts.path)).resolve()
      if not target.is_file() or target.stat().st_size == 0:
        problems.append(f"{page.relative_to(site)}: image {src} does not exist")
      else:
        figures += 1
    if figures == 0:
      problems.append(f"{page.relative_to(site)}: no figure")
  return problems


def _anchors(html: str) -> set[str]:
  return set(re.findall(r"\bid=\"([^\"]+)\"", html))


def check_api(site: pathlib.Path) -> list[str]:
  problems = []
  for name in PUBLIC_MODULES:
    page = site / "api" / f"{name}.html"
    if not page.exists():
      problems.append(f"api/{name}.html: missing (no API page for glif_jax.{name})")
      continue
    anchors = _anchors(page.read_text(encoding="utf-8"))
    module = importlib.import_module(f"glif_jax.{name}")
    if f"module-glif_jax.{name}" not in anchors:
      problems.append(f"api/{name}.html: no module entry for glif_jax.{name}")
    owners = [f"glif_jax.{name}"]
    if name == "analysis":
      owners += [f"glif_jax.analysis.{sub}" for sub in ANALYSIS_SUBMODULES]
      for sub in ANALYSIS_SUBMODULES:
        if f"module-glif_jax.analysis.{sub}" not in anchors:
          problems.append(f"api/analysis.html: no entry for glif_jax.analysis.{sub}")
    for public in getattr(module, "__all__", ()):
      if name == "analysis" and public in ANALYSIS_SUBMODULES:
        continue
      if not any(f"{owner}.{public}" in anchors for owner in owners):
        problems.append(f"api/{name}.html: glif_jax.{name}.{public} is not documented")
  return problems


def check_offline(site: pathlib.Path) -> list[str]:
  problems = []
  for page in site.rglob("*.html"):
    for m in _REMOTE_TAG.finditer(page.read_text(encoding="utf-8")):
      problems.append(f"{page.relative_to(site)}: loads from the web: {m.group(0)[:100]}")
  for css in site.rglob("*.css"):
    text = re.sub(r"/\*.*?\*/", "", css.read_text(encoding="utf-8"), flags=re.DOTALL)
    for m in _REMOTE_CSS.finditer(text):
      problems.append(f"{css.relative_to(site)}: loads from the web: {m.group(0)[:100]}")
  return problems


def _code_texts(html: str) -> set[str]:
  """The texts of the ``<code>`` elements of a page (tags inside removed)."""
  return {
    re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<code\b[^>]*>(.*?)</code>", html, re.DOTALL)
  }


def check_references(site: pathlib.Path) -> list[str]:
  import _reference

  problems = []
  expected = {
    "reference/config.html": [k.key for k in _reference.config_keys()],
    "reference/flags.html": [
      f"--{f.name}" for flags in _reference.entry_point_flags().values() for f in flags
    ],
  }
  for name, items in expected.items():
    page = site / name
    if not page.exists():
      problems.append(f"{name}: missing")
      continue
    shown = _code_texts(page.read_text(encoding="utf-8"))
    problems += [f"{name}: {item} is not listed" for item in items if item not in shown]
  return problems


_INTERNAL = re.compile(r"issue\s+1\d", re.IGNORECASE)


def check_words(site: pathlib.Path) -> list[str]:
  problems = []
  for page in sorted(site.rglob("*.html")):
    text = re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))
    for m in _INTERNAL.finditer(text):
      problems.append(f"{page.relative_to(site)}: names an internal item: {m.group(0)!r}")
  return problems


def check_citation() -> list[str]:
  import _reference

  import glif_jax

  cff = _reference.citation()
  problems = [f"CITATION.cff: {p}" for p in _reference.cff_problems(cff)]
  if cff.get("version") != glif_jax.__version__:
    problems.append(
      f"CITATION.cff: version {cff.get('version')!r}, the package is {glif_jax.__version__}"
    )
  readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
  if f"```bibtex\n{_reference.bibtex()}```" not in readme:
    problems.append("README.md: its BibTeX is not the one generated from CITATION.cff")
  return problems


NOT_RUN = "*Not run when this site is built: "
_PYTHON_FENCE = re.compile(r"^```(?:python|py)\s*$", re.MULTILINE)


def check_code_blocks() -> list[str]:
  """Every Python block of a how-to or the FAQ runs in the build (a ``{code-cell}``) or
  is marked not runnable: the line before it starts with `NOT_RUN` and gives the reason."""
  problems = []
  for source in sorted([*(DOCS / "how-to").glob("*.md"), DOCS / "faq.md"]):
    text = source.read_text(encoding="utf-8")
    for m in _PYTHON_FENCE.finditer(text):
      before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
      if not (before.startswith(NOT_RUN) and len(before) > len(NOT_RUN) + 3):
        line = text[: m.start()].count("\n") + 1
        problems.append(
          f"{source.relative_to(DOCS)}:{line}: a Python block that neither runs (make it a "
          f"code-cell) nor says why not (a line '{NOT_RUN}<reason>.*' before it)"
        )
  return problems


def main(argv: list[str]) -> int:
  site = pathlib.Path(argv[1] if len(argv) > 1 else DOCS / "_build" / "html")
  if not (site / "index.html").exists():
    print(f"check_site: {site}/index.html missing; build the site first", file=sys.stderr)
    return 1
  sys.path[:0] = [str(DOCS.parent), str(DOCS)]
  problems = check_tutorials(site) + check_api(site) + check_offline(site)
  problems += check_references(site) + check_words(site) + check_citation() + check_code_blocks()
  for p in problems:
    print(f"check_site: {p}", file=sys.stderr)
  tutorials = len(list((DOCS / "tutorials").glob("*.md")))
  pages = len(list(site.rglob("*.html")))
  print(
    f"check_site: {pages} pages, {tutorials} tutorials, {len(PUBLIC_MODULES)} API modules: "
    + ("OK" if not problems else f"{len(problems)} problem(s)")
  )
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
