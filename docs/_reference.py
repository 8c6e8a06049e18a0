"""Reference pages generated from the code at every build, so that they cannot drift.

- `config_keys`: every key of `glif_jax.training.default_config` with its default, type,
  the comments written beside it in ``glif_jax/training/config.py`` and the files under
  ``configs/`` that change it;
- `entry_point_flags`: every absl flag of ``train.main``, ``train.evaluate`` and
  ``train.analyze``, read from the flags each defines.

``conf.py`` replaces the lines ``% config-reference`` and ``% flag-reference`` of a page with
Markdown tables; ``check_site.py`` checks the built pages name every key and flag.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
from typing import Any, NamedTuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENTRY_POINTS = ("train.main", "train.evaluate", "train.analyze")
# A comment line that only heads a group of keys ("# Loss.", "# Model (glif_jax.models.create).").
_HEADING = re.compile(r"^[A-Z][a-z]+(?: [a-z]+){0,4}(?: \([^)]*\))?\.$")
_LEAD_HEADING = re.compile(r"^[A-Z][a-z]+\. ")  # "Parallelism. "jit": ..."


class ConfigKey(NamedTuple):
  """One key of the default config."""

  key: str  # dotted, e.g. "synthetic.train_size"
  section: str  # the docstring of the function of config.py that sets it
  default: Any
  type_name: str
  meaning: str
  changed_by: tuple[str, ...]  # config files (stems) whose value differs


class Flag(NamedTuple):
  """One flag of an entry point."""

  name: str
  type_name: str
  default: Any
  required: bool
  help: str


def _comment_text(lines: list[str]) -> str:
  kept = []
  for i, line in enumerate(lines):
    if i == 0 and _HEADING.match(line):
      continue
    kept.append(_LEAD_HEADING.sub("", line) if i == 0 else line)
  return " ".join(kept).strip()


def _key_comments(source: str) -> dict[str, tuple[str, str]]:
  """``{dotted key: (section, comment)}`` of every ``config.<key> = ...`` in the
  ``_*_keys`` functions of ``source``, in order."""
  lines = source.splitlines()
  found = {}
  for node in ast.parse(source).body:
    if not (isinstance(node, ast.FunctionDef) and node.name.endswith("_keys")):
      continue
    section = (ast.get_docstring(node) or "").splitlines()[0]
    shared: list[str] = []
    for statement in node.body:
      if not isinstance(statement, ast.Assign):
        continue
      target = ast.unparse(statement.targets[0])
      if not target.startswith("config."):
        continue
      above = []
      row = statement.lineno - 2
      while row >= 0 and lines[row].strip().startswith("#"):
        above.insert(0, lines[row].strip().lstrip("#").strip())
        row -= 1
      inline = lines[statement.lineno - 1].partition("  # ")[2].strip()
      if not above and not inline and shared:  # the key after another under one comment
        above = shared
      shared = above if not inline else []
      comment = " ".join(filter(None, [_comment_text(above), inline]))
      found[target.removeprefix("config.")] = (section, comment)
  return found


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
  from ml_collections import ConfigDict

  from glif_jax.training.config import FREE_FORM_KEYS

  values = {}
  for key in config:
    value = config[key]
    if isinstance(value, ConfigDict) and key not in FREE_FORM_KEYS:
      values |= _flat(value, f"{prefix}{key}.")
    else:
      values[prefix + key] = value
  return values


def _type_name(config: Any, key: str) -> str:
  *parents, leaf = key.split(".")
  for parent in parents:
    config = config[parent]
  kind = config.get_type(leaf)
  name = "dict" if kind.__name__ == "ConfigDict" else kind.__name__
  return f"{name} or None" if config[leaf] is None else name


def _config_files() -> dict[str, dict[str, Any]]:
  """``{stem: flat config}`` of every config file under ``configs/``; a parametrised
  helper (``cifar.py:<args>``) with its default argument, unless that is a named file's."""
  configs = {}
  for path in sorted((ROOT / "configs").glob("*.py")):
    if path.stem in ("__init__", "default"):
      continue
    get_config = getattr(importlib.import_module(f"configs.{path.stem}"), "get_config", None)
    if get_config is not None:
      configs[path.stem] = _flat(get_config())
  named = {
    stem: c
    for stem, c in configs.items()
    if inspect.signature(importlib.import_module(f"configs.{stem}").get_config).parameters == {}
  }
  return {stem: c for stem, c in configs.items() if stem in named or c not in named.values()}


def _families(stem: str) -> list[str]:
  """Patterns of ``stem``, widest first: ``cifar*_resnet*_t*``, ``cifar100_resnet*_t*``, ..."""
  numbers = list(re.finditer(r"\d+", stem))
  return [
    stem[: numbers[i].start()] + re.sub(r"\d+", "*", stem[numbers[i].start() :])
    for i in range(len(numbers))
  ]


def _compress(stems: list[str], every: list[str]) -> list[str]:
  """Writes files differing only in numbers (``cifar10_resnet19_t4``, ...) as one pattern
  (``cifar*_resnet*_t*``) when every file of the pattern is listed."""
  listed = []
  for stem in stems:
    for pattern in _families(stem):
      members = [s for s in every if re.fullmatch(re.escape(pattern).replace(r"\*", r"\d+"), s)]
      if len(members) > 1 and set(members) <= set(stems):
        stem = pattern
        break
    if stem not in listed:
      listed.append(stem)
  return listed


def config_keys() -> list[ConfigKey]:
  """Every key of `default_config`, in the order config.py sets them."""
  from glif_jax.training import config as config_module

  default = config_module.default_config()
  comments = _key_comments(inspect.getsource(config_module))
  files = _config_files()
  flat = _flat(default)
  in_source_order = [k for k in comments if k in flat]
  keys = []
  for key in in_source_order + [k for k in flat if k not in comments]:
    value = flat[key]
    section, meaning = comments.get(key, comments.get(key.split(".")[0], ("", "")))
    changed = [stem for stem, values in files.items() if values.get(key) != value]
    keys.append(
      ConfigKey(
        key,
        section,
        value,
        _type_name(default, key),
        meaning,
        tuple(_compress(changed, list(files))),
      )
    )
  return keys


def entry_point_flags() -> dict[str, list[Flag]]:
  """``{module: flags}`` of each entry point, as absl parses them (``--help`` order)."""
  from absl import flags

  found = {}
  for name in ENTRY_POINTS:
    defined_before = set(flags.FLAGS)
    module = importlib.import_module(name)
    if hasattr(module, "_define_flags"):  # defined only when run as a program
      module._define_flags()
    ours = [f for f in flags.FLAGS.get_flags_for_module(module) if f.name not in defined_before]
    found[name] = [
      Flag(f.name, f.flag_type(), f.default, f.name in _required(module), f.help) for f in ours
    ]
    for f in ours:  # the next entry point defines flags of the same names
      delattr(flags.FLAGS, f.name)
  return found


def _required(module: Any) -> set[str]:
  """The flags ``module`` marks as required (``flags.mark_flags_as_required([...])``)."""
  tree = ast.parse(inspect.getsource(module))
  names = set()
  for call in ast.walk(tree):
    if isinstance(call, ast.Call) and ast.unparse(call.func).endswith("mark_flags_as_required"):
      names |= set(ast.literal_eval(call.args[0]))
  return names


def _cell(text: Any) -> str:
  """``text`` as one Markdown table cell (no HTML read into ``<workdir>``)."""
  return re.sub(r"([|<>])", r"\\\1", str(text)).replace("\n", " ")


def _value(value: Any) -> str:
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  return f"``{value!r}``"


def config_markdown() -> str:
  """The config reference: one table per section of `default_config`."""
  out, section = [], None
  for k in config_keys():
    if k.section != section:
      section = k.section
      out += [
        "",
        f"## {section.rstrip('.')}",
        "",
        "| key | default | type | meaning | changed by |",
      ]
      out += ["|---|---|---|---|---|"]
      section = k.section
    changed = ", ".join(f"`{s}`" for s in k.changed_by) or "—"
    cells = [f"`{k.key}`", _value(k.default), k.type_name, _cell(k.meaning) or "—", changed]
    out.append("| " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def flags_markdown() -> str:
  """The flag reference: one table per entry point."""
  out = []
  for module, found in entry_point_flags().items():
    out += [
      "",
      f"## `python -m {module}`",
      "",
      "| flag | type | default | meaning |",
      "|---|---|---|---|",
    ]
    for f in found:
      default = "required" if f.required else _value(f.default)
      out.append(f"| `--{f.name}` | {f.type_name} | {default} | {_cell(f.help)} |")
  return "\n".join(out) + "\n"


# --- CITATION.cff: checked against CFF 1.2's schema, and its BibTeX -------------------------
CFF_FILE = ROOT / "CITATION.cff"
_CFF_KEYS = {
  "abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi",
  "identifiers", "keywords", "license", "license-url", "message", "preferred-citation",
  "references", "repository", "repository-artifact", "repository-code", "title", "type",
  "url", "version",
}  # fmt: skip
_REFERENCE_TYPES = {
  "article",
  "book",
  "conference",
  "conference-paper",
  "generic",
  "proceedings",
  "report",
  "software",
  "thesis",
  "website",
}  # a subset of CFF 1.2's, the kinds a paper or a library is
_PERSON_KEYS = {
  "family-names", "given-names", "name-particle", "name-suffix", "affiliation", "email",
  "orcid", "website", "name", "alias",
}  # fmt: skip


def _cff_problems_of_authors(authors: Any, where: str) -> list[str]:
  if not isinstance(authors, list) or not authors:
    return [f"{where}authors: a non-empty list expected, got {authors!r}"]
  problems = []
  for i, person in enumerate(authors):
    if not isinstance(person, dict) or not ({"family-names", "name"} & set(person)):
      problems.append(f"{where}authors[{i}]: a person (family-names) or entity (name) expected")
    elif unknown := set(person) - _PERSON_KEYS:
      problems.append(f"{where}authors[{i}]: unknown keys {sorted(unknown)}")
    elif any(not isinstance(v, str) for v in person.values()):
      problems.append(f"{where}authors[{i}]: every value must be a string")
  return problems


def cff_problems(cff: dict[str, Any]) -> list[str]:
  """What makes ``cff`` (a parsed CITATION.cff) invalid CFF 1.2, checked by the schema's
  required keys, known keys and value types; empty if it is valid."""
  import datetime

  problems = [
    f"missing required key {k!r}"
    for k in ("cff-version", "message", "title", "authors")
    if k not in cff
  ]
  if unknown := set(cff) - _CFF_KEYS:
    problems.append(f"unknown keys {sorted(unknown)}")
  if cff.get("cff-version") != "1.2.0":
    problems.append(f"cff-version must be the string '1.2.0', got {cff.get('cff-version')!r}")
  for key in ("message", "title", "version", "license"):
    if key in cff and not isinstance(cff[key], str):
      problems.append(f"{key} must be a string, got {cff[key]!r}")
  date = cff.get("date-released", "2000-01-01")
  if not (isinstance(date, datetime.date) or re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(date))):
    problems.append(f"date-released must be YYYY-MM-DD, got {date!r}")
  if cff.get("type", "software") not in ("software", "dataset"):
    problems.append(f"type must be 'software' or 'dataset', got {cff.get('type')!r}")
  problems += _cff_problems_of_authors(cff.get("authors"), "")
  for i, ref in enumerate(cff.get("references", [])):
    where = f"references[{i}]."
    if ref.get("type") not in _REFERENCE_TYPES:
      problems.append(
        f"{where}type: one of {sorted(_REFERENCE_TYPES)} expected, got {ref.get('type')!r}"
      )
    if not isinstance(ref.get("title"), str):
      problems.append(f"{where}title: a string expected")
    problems += _cff_problems_of_authors(ref.get("authors"), where)
    for key in ("year", "start", "end", "volume"):
      if key in ref and not isinstance(ref[key], int):
        problems.append(f"{where}{key}: an integer expected, got {ref[key]!r}")
  return problems


def citation() -> dict[str, Any]:
  """CITATION.cff, parsed."""
  import yaml

  return yaml.safe_load(CFF_FILE.read_text(encoding="utf-8"))


def _bib_authors(authors: list[dict[str, str]]) -> str:
  return " and ".join(
    f"{a['family-names']}, {a['given-names']}" if "family-names" in a else f"{{{a['name']}}}"
    for a in authors
  )


def _bib_key(ref: dict[str, Any]) -> str:
  first = ref["authors"][0].get("family-names", "glif-jax").lower()
  word = re.match(r"\w+", ref["title"]).group(0).lower()  # type: ignore[union-attr]
  return f"{first}{ref['year']}{word}"


def bibtex() -> str:
  """BibTeX of glif-jax and of every paper in CITATION.cff's references."""
  cff = citation()
  entries = [
    (
      "@software{glif_jax,\n"
      f"  title = {{{cff['title']}}},\n"
      f"  author = {{{_bib_authors(cff['authors'])}}},\n"
      f"  version = {{{cff['version']}}},\n"
      f"  year = {{{str(cff['date-released'])[:4]}}},\n"
      f"  license = {{{cff['license']}}},\n"
      "}"
    )
  ]
  for ref in cff.get("references", []):
    fields = {
      "title": ref["title"],
      "author": _bib_authors(ref["authors"]),
      "booktitle": ref.get("collection-title"),
      "volume": ref.get("volume"),
      "pages": f"{ref['start']}--{ref['end']}" if "start" in ref else None,
      "year": ref["year"],
    }
    arxiv = [i["value"] for i in ref.get("identifiers", []) if i["value"].startswith("arXiv:")]
    if arxiv:
      fields |= {"eprint": arxiv[0].removeprefix("arXiv:"), "archiveprefix": "arXiv"}
    body = "".join(f"  {k} = {{{v}}},\n" for k, v in fields.items() if v is not None)
    entries.append(f"@inproceedings{{{_bib_key(ref)},\n{body}}}")
  return "\n\n".join(entries) + "\n"
