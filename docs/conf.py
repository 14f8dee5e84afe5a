"""Sphinx configuration of jaxal's documentation (`python3 run.py docs`).

Sphinx with autodoc, napoleon (Google-style docstrings, as jaxal writes them) and
MyST (the guides are Markdown), as JAX, Flax and optax build theirs; BUILD.md says
why. The build runs with warnings as errors (`-W`), locally and in the tests.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# autodoc imports jaxal; on the CPU, without the four fake devices of the tests.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

project = "jaxal"
author = "the jaxal authors"
copyright = "2026, the jaxal authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt"]

myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

autodoc_default_options = {"members": True, "member-order": "bysource",
                           "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# jaxal's modules use `from __future__ import annotations`, so annotations reach
# autodoc as strings and these aliases apply: a signature reads `ArrayLike`, not
# the union it stands for spelled out in every argument.
autodoc_type_aliases = {"ArrayLike": "jax.typing.ArrayLike"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" sections as fields: dataclass fields are documented once.
napoleon_use_ivar = True
# Docstrings are written to be read in help() as much as on the site: a name in
# `backticks` is code, not a cross-reference that must resolve.
default_role = "code"
nitpicky = False

html_theme = "furo"
html_title = "jaxal"
html_static_path = []


import re  # noqa: E402

_CODE = re.compile(r"(``.*?``|`[^`]*`)")


def _plain_bars(app, what, name, obj, options, lines):
  """jaxal's docstrings are written for `help()` as much as for this site: a
  norm `|x - s|` or a count `|L|` is maths, not an reST substitution. Escape the
  bars outside code spans (docstrings hold no reST tables)."""
  del app, what, name, obj, options
  for i, line in enumerate(lines):
    parts = _CODE.split(line)
    lines[i] = "".join(p if k % 2 else p.replace("|", r"\|")
                       for k, p in enumerate(parts))


def setup(app):
  app.connect("autodoc-process-docstring", _plain_bars)
