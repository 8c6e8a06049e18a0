"""Sphinx configuration of the glif-jax documentation.

Built offline and strictly: ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(``docs/build.sh``). Nothing here fetches from the network: furo bundles its CSS, JS and
fonts (system font stacks, no web fonts); intersphinx is not loaded; there is no math
extension (equations are plain Unicode in code blocks).
Every tutorial under ``tutorials/`` is executed during the build (myst-nb, ``force``)
and a failing cell fails the build.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # glif_jax, configs and train importable without installing
sys.path.insert(0, os.path.dirname(__file__))  # _reference.py
# The executed notebooks run in kernels started in their own directory; they find the
# repository through PYTHONPATH, and JAX stays on the CPU with one device unless a
# tutorial asks for more.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

import glif_jax

# jax.Array is defined in jaxlib as ``jaxlib._jax.Array`` with ``__module__ = "jax"``, so
# Sphinx printed its annotations as ``jax.jaxlib._jax.Array``; name it as users write it.
jax.Array.__qualname__ = "Array"

project = "glif-jax"
author = "the glif-jax authors"
copyright = "the glif-jax authors, Apache-2.0"
release = version = glif_jax.__version__

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.viewcode",
]

exclude_patterns = [
  "_build",
  "jupyter_execute",
  ".jupyter_cache",
  "**.ipynb_checkpoints",
  "README.md",
  "check_site.py",
  "_reference.py",
  "build.sh",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# --- HTML: furo, everything served from the built site --------------------------------
html_theme = "furo"
html_title = f"glif-jax {release}"
html_static_path: list[str] = []
html_theme_options = {
  "source_repository": "",  # no "edit this page" links to a remote
  "top_of_page_buttons": [],
}
html_show_sourcelink = False

# --- MyST / myst-nb ------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]  # no dollarmath: no MathJax from a CDN
myst_heading_anchors = 3
nb_execution_mode = "force"  # every tutorial runs at every build, so none can rot
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300
nb_execution_excludepatterns: list[str] = []
nb_merge_streams = True
nb_output_stderr = "remove"  # logging (absl, JAX platform notices) is not page content

# --- API reference from the docstrings -----------------------------------------------
autodoc_default_options = {
  "members": True,
  "undoc-members": True,
  "show-inheritance": True,
  "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# Types join the parameters a docstring describes; a NamedTuple's fields are described as
# attributes, so its constructor's parameters are not listed a second time.
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"  # one signature per class, no separate __new__
autodoc_mock_imports: list[str] = []
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_attr_annotations = True
# The docstrings write `name` for a name of the library (Google style); resolve it when
# it is one, print it as code otherwise. Unresolved references are not warnings
# (nitpicky is off): jax, flax and numpy names are not linked, as intersphinx is off.
default_role = "py:obj"
add_module_names = False
python_use_unqualified_type_names = True


# Google style lets one Args entry name several parameters ("neuron, params, **options:
# as in `simulate`."); napoleon escapes the stars of a name only when the entry starts
# with it, and docutils then reads "**options" as unclosed bold. Escape them here, before
# napoleon runs, rather than reword the docstrings.
import re

_GROUPED_ARGS = re.compile(r"^(\s+)([\w*]+(?:,\s*[\w*]+)+)(\s*(?:\([^)]*\))?:\s)")


def _escape_grouped_star_args(app, what, name, obj, options, lines):
  for i, line in enumerate(lines):
    m = _GROUPED_ARGS.match(line)
    if m and "*" in m.group(2):
      names = m.group(2).replace("*", r"\*")
      lines[i] = m.group(1) + names + m.group(3) + line[m.end() :]


def _drop_builtin_type_docstring(app, what, name, obj, options, lines):
  """A constant (a tuple, a str) or a type alias (``dict[str, ...]``) has no docstring of
  its own: do not show its type's."""
  kind = getattr(obj, "__origin__", type(obj))  # an alias's docstring is its origin's
  if what in ("data", "attribute") and kind.__module__ == "builtins":
    type_doc = (kind.__doc__ or "").strip().splitlines()
    if type_doc and lines and lines[0].strip() == type_doc[0].strip():
      lines.clear()


# automodule documents a package's re-exported classes and functions, but not its
# re-exported values (constants, `functools.partial` model variants): an API page marks
# where those go with a line "% public-data glif_jax.<module>", replaced here by one
# autodata entry per such name of the module's __all__, so none is ever listed by hand.
_PUBLIC_DATA = re.compile(r"^% public-data (\S+)$", re.MULTILINE)


def _public_data(module_name: str) -> str:
  import importlib
  import inspect

  module = importlib.import_module(module_name)
  names = [
    name
    for name in getattr(module, "__all__", ())
    if not (
      inspect.isclass(obj := getattr(module, name))
      or inspect.isroutine(obj)
      or inspect.ismodule(obj)
    )
  ]
  if not names:
    return ""
  return "```{eval-rst}\n" + "".join(f".. autodata:: {module_name}.{n}\n" for n in names) + "```\n"


def _insert_generated(app, docname, source):
  """Generated content (docs/_reference.py) in place of its marker line."""
  import _reference

  markers = {
    "% config-reference": _reference.config_markdown,
    "% flag-reference": _reference.flags_markdown,
    "% citation-bibtex": lambda: f"```bibtex\n{_reference.bibtex()}```\n",
  }
  for marker, make in markers.items():
    if marker in source[0]:
      source[0] = source[0].replace(marker, make())
  if docname.startswith("api/"):
    source[0] = _PUBLIC_DATA.sub(lambda m: _public_data(m.group(1)), source[0])
    source[0] = _PUBLIC_API.sub(
      lambda m: _public_api(m.group(1), m.group(2), m.group(3)), source[0]
    )


# An API page lists a module's functions, classes and exceptions in sections of its own
# order with lines "% public-functions glif_jax.<module> [first names ...]" (and
# "% public-classes", "% public-exceptions"): the names given come first, in that order
# (what users call first), then the module's other public names of that kind in __all__
# order, so none can be left out.
_PUBLIC_API = re.compile(
  r"^% public-(functions|classes|exceptions) (\S+)((?: \S+)*)$", re.MULTILINE
)
_DIRECTIVE = {"functions": "autofunction", "classes": "autoclass", "exceptions": "autoexception"}


def _kind(obj) -> str | None:
  import inspect

  if inspect.isclass(obj):
    return "exceptions" if issubclass(obj, BaseException) else "classes"
  return "functions" if inspect.isroutine(obj) else None


def _public_api(kind: str, module_name: str, first: str) -> str:
  import importlib

  module = importlib.import_module(module_name)
  public = [n for n in module.__all__ if _kind(getattr(module, n)) == kind]
  leading = first.split()
  unknown = [n for n in leading if n not in public]
  if unknown:
    raise ValueError(f"{module_name}: {unknown} are not public {kind} of the module")
  names = leading + [n for n in public if n not in leading]
  directive = _DIRECTIVE[kind]
  return (
    "```{eval-rst}\n" + "".join(f".. {directive}:: {module_name}.{n}\n" for n in names) + "```\n"
  )


def _skip_namedtuple_aliases(app, what, name, obj, skip, options):
  """A NamedTuple's fields are described in its Attributes section; their generated
  properties ("Alias for field number N") are not listed again."""
  if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
    return True
  return None


def setup(app):
  app.connect("source-read", _insert_generated)
  app.connect("autodoc-skip-member", _skip_namedtuple_aliases)
  app.connect("autodoc-process-docstring", _drop_builtin_type_docstring, priority=300)
  # priority < 500: before napoleon's own autodoc-process-docstring handler
  app.connect("autodoc-process-docstring", _escape_grouped_star_args, priority=400)
