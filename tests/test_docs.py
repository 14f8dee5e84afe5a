"""The documentation: the site builds with warnings as errors, every public name
has a docstring, the docstrings' examples run, every relative link resolves."""

import doctest
import glob
import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT  # noqa: E402

# The modules of the API reference (docs/api/*.md), public by name.
API_MODULES = (
    "jaxal", "jaxal.acquisition", "jaxal.uncertainty", "jaxal.diversify",
    "jaxal.kcenter", "jaxal.distances", "jaxal.balancing", "jaxal.metrics",
    "jaxal.rounds", "jaxal.direct", "jaxal.zeroshot", "jaxal.guesses", "jaxal.io", "jaxal.errors",
    "jaxal.coldstart", "jaxal.coldstart.typiclust", "jaxal.coldstart.probcover",
    "jaxal.coldstart.maxherding", "jaxal.coldstart.coverage", "jaxal.coldstart.kmeans",
    "jaxal.coldstart.uherding", "jaxal.coldstart.dropquery",
    "jaxal.curation", "jaxal.curation.neighbors", "jaxal.curation.duplicates",
    "jaxal.curation.scores", "jaxal.curation.projection",
    "jaxal.datasets", "jaxal.datasets.catalog", "jaxal.datasets.imbalance",
    "jaxal.datasets.procedural", "jaxal.datasets.images", "jaxal.datasets.pipeline",
    "jaxal.datasets.split_images", "jaxal.datasets.builders",
    "jaxal.datasets.mit67",
    "jaxal.models", "jaxal.models.resnet", "jaxal.models.train", "jaxal.models.inference",
    "jaxal.models.checkpoint", "jaxal.models.source", "jaxal.models.target",
    "jaxal.models.pretrained", "jaxal.models.distributed", "jaxal.hostmem",
    "jaxal.models.strided_conv", "jaxal.models.simclr", "jaxal.models.augment",
    "jaxal.models.ssl_source", "jaxal.models.vit", "jaxal.models.hf_vit",
    "jaxal.models.foundation", "jaxal.models.text_tokenizer",
    "jaxal.experiments", "jaxal.experiments.runner", "jaxal.experiments.protocol",
    "jaxal.experiments.sweep", "jaxal.experiments.render", "jaxal.experiments.plots",
    "jaxal.experiments.paper",
)


def _public(module):
  """(name, object) of the functions and classes `module` defines or exports."""
  names = getattr(module, "__all__", None)
  if names is None:
    names = [n for n, v in vars(module).items()
             if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
  for n in names:
    v = getattr(module, n)
    if inspect.isfunction(v) or inspect.isclass(v):
      yield n, v


def _undocumented(obj) -> bool:
  doc = (obj.__doc__ or "").strip()
  # dataclasses and NamedTuples get a generated "Name(field, ...)" docstring
  return not doc or (inspect.isclass(obj) and doc.startswith(obj.__name__ + "("))


def test_every_public_name_has_a_docstring():
  missing = []
  for m in API_MODULES:
    module = importlib.import_module(m)
    if not (module.__doc__ or "").strip():
      missing.append(m)
    for n, v in _public(module):
      if _undocumented(v):
        missing.append(f"{m}.{n}")
      if inspect.isclass(v) and v.__module__ == m:
        for a, f in vars(v).items():
          fn = f.fget if isinstance(f, property) else getattr(f, "__func__", f)
          if not a.startswith("_") and inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
            missing.append(f"{m}.{n}.{a}")
  assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_the_docstring_check_finds_a_missing_docstring():
  def f():
    pass
  class C:
    pass
  assert _undocumented(f) and _undocumented(C)


def test_the_api_reference_lists_every_public_module():
  text = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "docs", "api", "*.md")))
  listed = set(re.findall(r"\.\. automodule:: (\S+)", text))
  assert listed == set(API_MODULES), set(API_MODULES) ^ listed
  # every module of the library is either in the reference or private/command-line
  on_disk = set()
  for path in glob.glob(os.path.join(ROOT, "jaxal", "**", "*.py"), recursive=True):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    rel = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
    if not any(p.startswith("_") for p in rel.split(".")) and not rel.startswith("jaxal.cli"):
      on_disk.add(rel)
  assert on_disk - set(API_MODULES) == set(), "modules missing from the API reference"


def _doctest_modules():
  out = []
  for path in sorted(glob.glob(os.path.join(ROOT, "jaxal", "**", "*.py"), recursive=True)):
    with open(path) as f:
      if ">>>" in f.read():
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        out.append(rel[:-len(".__init__")] if rel.endswith(".__init__") else rel)
  return out


def test_docstring_examples_run():
  """The examples in docstrings are doctests: run them all (tiny arrays)."""
  attempted, failures = 0, []
  for m in _doctest_modules():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(importlib.import_module(m)):
      r = runner.run(test, out=failures.append)
      attempted += r.attempted
  assert not failures, "".join(failures)
  assert attempted >= 45, attempted  # the examples are there and were run


def test_docs_build_with_warnings_as_errors(tmp_path):
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  out = subprocess.run(
      [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
       os.path.join(ROOT, "docs"), str(tmp_path / "html")],
      capture_output=True, text=True, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-4000:]
  for page in ("index", "guides/method", "guides/command", "guides/own_model",
               "guides/reproduce", "guides/coldstart", "guides/benchmarks",
               "api/method", "api/models", "changelog"):
    assert (tmp_path / "html" / f"{page}.html").exists(), page
  api = (tmp_path / "html" / "api" / "method.html").read_text()
  # the reference is built from the docstrings, not just the page titles
  assert 'id="jaxal.acquisition.select"' in api and 'id="jaxal.balancing.balanced_select"' in api
  # signatures name the alias instead of spelling out the union it stands for
  assert "ArrayLike" in api and "ndarray | bool | number" not in api


def _slug(heading: str) -> str:
  """The anchor GitHub and MyST give a Markdown heading."""
  s = re.sub(r"[`*_]", "", heading.strip().lower())
  s = re.sub(r"[^\w\- ]", "", s)
  return s.replace(" ", "-")


def _markdown_files():
  files = [os.path.join(ROOT, p) for p in ("README.md", "BUILD.md", "CHANGELOG.md",
                                             os.path.join("bench", "results", "README.md"))]
  files += glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
  return [f for f in files if "_build" not in f]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(path):
  with open(path) as f:
    text = f.read()
  text = re.sub(r"```.*?```", "", text, flags=re.S)  # code is not links
  bad = []
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"[a-z]+:", target):
      continue
    file, _, anchor = target.partition("#")
    dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
    if not os.path.exists(dest):
      bad.append(target)
      continue
    if anchor and dest.endswith(".md"):
      with open(dest) as f:
        heads = {_slug(h) for h in re.findall(r"^#+ (.*)$", f.read(), re.M)}
      if anchor not in heads:
        bad.append(target)
  assert not bad, f"{os.path.relpath(path, ROOT)}: links that do not resolve: {bad}"


def test_the_link_check_catches_a_broken_link(tmp_path):
  page = tmp_path / "page.md"
  page.write_text("# Title\n[ok](#title) [gone](missing.md) [anchor](#nope)\n")
  with pytest.raises(AssertionError, match=r"missing\.md.*#nope"):
    test_relative_links_resolve(str(page))


def _cited_files():
  """Every file of the project a reader meets, but bench/results/ and the
  changelog, which keep the history."""
  out = []
  for top in ("jaxal", "experiments", "tests", "bench", "docs", ".ci"):
    for path in glob.glob(os.path.join(ROOT, top, "**", "*"), recursive=True):
      rel = os.path.relpath(path, ROOT)
      if (os.path.isfile(path) and not path.endswith((".pyc", ".so", ".png", ".npz",
                                                      ".npy", ".safetensors", ".model"))
          and not rel.startswith((os.path.join("bench", "results"),
                                  os.path.join("docs", "_build"),
                                  os.path.join("docs", "changelog")))
          and os.sep + "__pycache__" + os.sep not in path):
        out.append(path)
  return out + [os.path.join(ROOT, f) for f in ("README.md", "BUILD.md", "run.py")]


def test_the_project_cites_no_file_users_lack_and_no_tracker_numbers():
  bad = []
  for path in _cited_files():
    with open(path, errors="replace") as f:
      for k, line in enumerate(f, 1):
        if re.search(r"METHOD\.md", line) or re.search(r"\bissues? #?[0-9]", line, re.I):
          bad.append(f"{os.path.relpath(path, ROOT)}:{k}: {line.strip()}")
  assert not bad, "\n".join(bad)


def test_readme_is_short_and_keeps_its_two_commands_first():
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  assert len(text.splitlines()) <= 200
  first = re.search(r"```[^\n]*\n(.*?)```", text, re.S).group(1)
  assert first.strip().splitlines() == ["python3 run.py quickstart", "python3 run.py test"]


def _module_map() -> set[str]:
  """The files BUILD.md's module map names, as paths: its Layout block is a
  tree, two spaces of indent per folder level."""
  with open(os.path.join(ROOT, "BUILD.md")) as f:
    text = f.read()
  block = re.search(r"^## Layout\n+((?:    .*\n|\n)+)", text, re.M).group(1)
  found, folders = set(), []
  for line in block.splitlines():
    if not line.strip():
      continue
    indent = (len(line) - len(line.lstrip()) - 4) // 2
    name = line.split()[0]
    if name.startswith("#") or indent < 0:
      continue
    del folders[indent:]
    if name.endswith("/"):
      folders.append(name.rstrip("/"))
    elif "." in name and len(line) - len(line.lstrip()) - 4 == 2 * indent:
      found.add("/".join(folders + [name]))
  return found


def test_build_md_module_map_lists_every_module():
  listed = _module_map()
  missing = sorted(
      os.path.relpath(p, ROOT).replace(os.sep, "/")
      for p in glob.glob(os.path.join(ROOT, "jaxal", "**", "*.py"), recursive=True)
      if not p.endswith("__init__.py")
      and os.path.relpath(p, ROOT).replace(os.sep, "/") not in listed)
  assert not missing, f"BUILD.md's Layout lists no entry for {missing}"
  stale = sorted(p for p in listed if p.startswith("jaxal/") and p.endswith(".py")
                 and not os.path.exists(os.path.join(ROOT, p)))
  assert not stale, f"BUILD.md's Layout lists files that do not exist: {stale}"
