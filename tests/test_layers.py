"""The architecture, read from the source: which part of jaxal may import which.

    base         jaxal._validation, jaxal.errors, jaxal.io, jaxal._array_store,
                 jaxal._xla_cpu, jaxal._native, jaxal._plotting,
                 jaxal.hostmem
    method       jaxal (the package) and the paper's method at its top:
                 acquisition, uncertainty, diversify, _sort, kcenter,
                 distances, balancing, metrics, rounds, direct, zeroshot, guesses; jaxal.coldstart.* (the methods
                 that followed the paper); jaxal.curation.* (duplicates, scores)
    datasets     jaxal.datasets.*
    models       jaxal.models.*
    experiments  jaxal.experiments.*
    cli          jaxal.cli.*, jaxal.__main__

A module may import its own layer and the layers above it in this list, never
one below (BUILD.md's module map). Every import counts, including those inside
functions, and no import cycle is allowed anywhere in the package.
"""

import ast
import os

import pytest

from tests.conftest import ROOT  # noqa: E402
PKG = os.path.join(ROOT, "jaxal")
ORDER = ("base", "method", "datasets", "models", "experiments", "cli")
BASE = {"jaxal._validation", "jaxal.errors", "jaxal.io", "jaxal._array_store",
        "jaxal._xla_cpu", "jaxal._native", "jaxal._plotting",
        "jaxal.hostmem"}
METHOD = {"jaxal", "jaxal.acquisition", "jaxal.uncertainty", "jaxal.diversify",
          "jaxal._sort", "jaxal.kcenter", "jaxal.distances", "jaxal.balancing", "jaxal.metrics",
          "jaxal.rounds", "jaxal.direct", "jaxal.zeroshot", "jaxal.guesses"} | {f"jaxal.coldstart{m}" for m in (
              "", "._inputs", "._pool", ".kmeans", ".coverage", ".typiclust", ".probcover",
              ".maxherding", ".uherding", ".dropquery")} | {
                  f"jaxal.curation{m}" for m in ("", ".neighbors", ".duplicates",
                                                 ".scores", ".projection")}
SUBPACKAGES = ("datasets", "models", "experiments", "cli")


def modules() -> dict[str, str]:
  """{dotted module name: file} of every module of the package."""
  out = {}
  for d, _, files in os.walk(PKG):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
        if rel[-1] == "__init__":
          rel = rel[:-1]
        out[".".join(rel)] = os.path.join(d, f)
  return out


MODULES = modules()


def layer(name: str) -> str:
  if name in BASE:
    return "base"
  if name in METHOD:
    return "method"
  if name == "jaxal.__main__":
    return "cli"  # `python -m jaxal` is the command
  parts = name.split(".")
  if len(parts) >= 2 and parts[1] in SUBPACKAGES:
    return parts[1]
  raise AssertionError(f"{name} belongs to no layer: put it in a sub-package, or "
                       "add it to the method's list here and in BUILD.md.")


def imports(name: str) -> set[str]:
  """The jaxal modules `name` imports (a `from P import X` names submodule
  P.X where X is one)."""
  with open(MODULES[name]) as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.split(".")[0] == "jaxal"}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
        and node.module.split(".")[0] == "jaxal":
      for a in node.names:
        sub = f"{node.module}.{a.name}"
        found.add(sub if sub in MODULES else node.module)
  assert all(m in MODULES for m in found), (name, found - set(MODULES))
  return found - {name}


def third_party(name: str) -> set[str]:
  with open(MODULES[name]) as f:
    tree = ast.parse(f.read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      out.add(node.module.split(".")[0])
  return out


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer_and_the_method_is_at_the_top():
  assert {m for m in MODULES if layer(m) == "method"} == METHOD
  for m in MODULES:
    layer(m)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_lower_layer(name):
  mine = ORDER.index(layer(name))
  bad = sorted(f"{t} ({layer(t)})" for t in GRAPH[name]
               if ORDER.index(layer(t)) > mine)
  assert not bad, f"{name} ({layer(name)}) imports {', '.join(bad)}"


def test_no_import_cycle():
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in sorted(GRAPH[m]):
      if state.get(t) == "open":
        cycle = stack[stack.index(t):] + [t]
        raise AssertionError("import cycle: " + " -> ".join(cycle))
      if t not in state:
        visit(t)
    stack.pop()
    state[m] = "done"

  for m in sorted(GRAPH):
    if m not in state:
      visit(m)


def test_only_the_datasets_import_tensorflow():
  for m in MODULES:
    if layer(m) != "datasets":
      assert not third_party(m) & {"tensorflow", "tensorflow_datasets"}, m


def test_the_checker_sees_a_violation():
  """The rule can fail: a method module importing the command is caught."""
  assert ORDER.index(layer("jaxal.cli.command")) > ORDER.index(layer("jaxal.rounds"))
  assert "jaxal.models.target" in GRAPH["jaxal.cli.select_balance"]
  assert "jaxal.datasets.mit67" in GRAPH["jaxal.datasets.catalog"]
  with pytest.raises(AssertionError, match="belongs to no layer"):
    layer("jaxal.newthing")
