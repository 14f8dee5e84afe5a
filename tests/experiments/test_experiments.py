"""The table commands end to end on tiny offline data, in one shared work
directory: every table, resume after SIGKILL, concurrent shards, streamed pools,
caches, rounds. (Bad flags and the real-data path: `test_table_flags.py`, a file
of its own so that the two test workers share the load.)"""

import dataclasses
import csv
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from absl import flags
from absl import flags as flags_lib  # `flags` is also the tests' list of flags

from experiments import tables as tables_command
from jaxal.experiments import sweep

from tests.experiments.tables_cli import cells_csv, command, env, run_in_process

SVM_TABLES = (2, 4, 5, 6, 7, 8, 9, 10, 11)


@pytest.fixture(scope="module")
def tables_workdir(tmp_path_factory):
  """One workdir in which every table command ran (they share cells)."""
  workdir = str(tmp_path_factory.mktemp("tables"))
  outputs = {}
  try:
    # The tables run with the same flags (the SVM, no plots) in one run, as the
    # quickstart runs Tables 2-5: M_S is loaded once for the nine.
    together = run_in_process(workdir, "--target=svm", "--plots=false",
                              tables=SVM_TABLES)
    outputs.update(dict.fromkeys(SVM_TABLES, together))
    for n in sorted(set(range(2, 17)) - set(SVM_TABLES)):
      # Tables 3 and 12 keep the default targets (fine-tuning for the far target,
      # both targets in Table 12, on seed 0: the streamed pools' and the killed
      # sweep's tests compare with these); the others use the SVM to stay fast.
      args = [f"--table={n}", f"--plots={n == 3}"]
      if n not in (3, 12):
        args.append("--target=svm")
      if n == 12:
        args.append("--seeds=0")
      if n == 13:  # the cold-start functions beside the paper's
        args.append("--methods=random,entropy_inv_div,coreset,typiclust,probcover,"
                    "maxherding")
      if n == 14:  # the same on SimCLR features (its own targets: svm, svm_ssl)
        args = ["--table=14", "--plots=false",
                "--methods=random,entropy_inv_div,coreset,typiclust"]
      if n == 15:  # over 2 rounds, with the methods that read the target
        args = ["--table=15", "--plots=false", "--rounds=2", "--budgets=12",
                "--seeds=0", "--datasets=offline_target",
                "--methods=random,uherding,dropquery,direct"]
      if n == 16:  # zero-shot rows and guided balancing, the offline stand-in
        args = ["--table=16", "--plots=false", "--target=svm", "--seeds=0",
                "--datasets=offline_target"]
      outputs[n] = run_in_process(workdir, *args)
  finally:
    flags.FLAGS.unparse_flags()
  return workdir, outputs


@pytest.mark.parametrize("n", range(2, 17))
def test_every_table_command_end_to_end(tables_workdir, n):
  workdir, outputs = tables_workdir
  name = f"table_{n}" + ("_rounds2" if n == 15 else "")
  for ext in ("md", "csv", "tex"):
    path = os.path.join(workdir, "tables", f"{name}.{ext}")
    assert os.path.getsize(path) > 0, path
  with open(os.path.join(workdir, "tables", f"{name}.md")) as f:
    md = f.read()
  if n == 15:  # its rounds say so first
    assert md.startswith("Iterative selection in 2 rounds")
    md = md[md.index("Table 15."):]
  assert md.startswith(f"Table {n}.")
  body = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
  ran = [ln for ln in body if not ln.startswith("| direct [SSL] +bal")
         and not ln.startswith("| direct +bal")]
  assert ran and all("–" not in ln.split("|")[3] for ln in ran)  # every cell ran
  assert f"table {n}: " in outputs[n]
  if n == 12:
    assert "offline_far:finetune 6" in md and "offline_target:svm 12" in md
  if n in (6, 7):
    assert "coreset +ens" in md and "random +ens" not in md
  if n == 13:  # every method before and after balancing, all three statistics
    for m in ("random", "entropy_inv_div", "coreset", "typiclust", "probcover",
              "maxherding"):
      for label in (m, m + " +bal"):
        for stat in ("acc_t", "classes_found", "imbalance_ratio"):
          assert f"| {label} | {stat} |" in md
    # the cells it shares with Tables 2-5 were not run again: one row per cell
    keys = [tuple(r[k] for k in ("dataset", "pool", "target", "budget", "method",
                                 "balancing", "ensemble", "seed", "rounds",
                                 "features", "guided"))
            for r in cells_csv(workdir)]
    assert len(keys) == len(set(keys))
  if n == 14:
    for label in ("random [SSL]", "coreset [SSL] +bal", "typiclust [SSL]",
                  "entropy_inv_div +bal", "typiclust"):
      assert f"| {label} | acc_t |" in md
    assert "entropy_inv_div [SSL]" not in md  # it needs M_S's probabilities
    assert "offline_target:svm 6" in md and "offline_far:svm_ssl 12" in md
    assert "G_AL (svm / svm_ssl) / Average" in md  # a G_AL per target
    rows = [r for r in cells_csv(workdir, features="ssl") if r["rounds"] == "1"]
    assert rows and {r["method"] for r in rows} == {"random", "coreset", "typiclust"}
    assert {r["target"] for r in rows} == {"svm", "svm_ssl"}
    # one SimCLR run per pool, labels never read: its config names no labels
    runs = sorted(os.listdir(os.path.join(workdir, "ssl")))
    assert [r.split("_imbalanced_")[0] for r in runs if not r.endswith(".lock")] == [
        "offline_far", "offline_target"]
    # the M_S cells with the SVM are Table 13's, not run again
    keys = [tuple(r[k] for k in sweep.CSV_COLUMNS if k not in ("seconds", "acc_t",
                                                             "classes_found",
                                                             "imbalance_ratio",
                                                             "labeled"))
            for r in cells_csv(workdir)]
    assert len(keys) == len(set(keys))
  if n == 15:
    for label in ("uherding", "uherding +bal", "dropquery [SSL] +bal", "direct",
                  "direct [SSL]", "random +bal"):
      assert f"| {label} | acc_t |" in md
    # DIRECT labels as it selects: no balanced cell of it ran
    assert all("–" in ln.split("|")[3] for ln in body if "direct" in ln and "+bal" in ln)
    rows = [r for r in cells_csv(workdir) if r["rounds"] == "2"]
    assert {r["method"] for r in rows} == {"random", "uherding", "dropquery", "direct"}
    assert {(r["method"], r["balancing"]) for r in rows} >= {("uherding", "1"),
                                                            ("random", "1")}
    assert ("direct", "1") not in {(r["method"], r["balancing"]) for r in rows}
    assert all(int(r["labeled"]) == 12 for r in rows)
  if n == 16:
    for label in ("random +guess", "coreset +guess", "entropy_inv_div [ZS]",
                  "entropy_inv_div [ZS] +bal", "entropy_inv_div [ZS] +guess",
                  "entropy_inv_div +guess", "entropy_inv_div +bal"):
      for stat in ("acc_t", "classes_found", "imbalance_ratio"):
        assert f"| {label} | {stat} |" in md, label
    assert "random [ZS]" not in md and "coreset [ZS]" not in md
    rows = [r for r in cells_csv(workdir, dataset="offline_target", seed=0,
                                 target="svm", rounds=1) if r["guided"] == "1"
            or r["features"] == "zeroshot"]
    assert {(r["method"], r["features"], r["balancing"], r["guided"]) for r in rows} == {
        ("random", "source", "1", "1"), ("coreset", "source", "1", "1"),
        ("entropy_inv_div", "source", "1", "1"), ("entropy_inv_div", "zeroshot", "0", "0"),
        ("entropy_inv_div", "zeroshot", "1", "0"), ("entropy_inv_div", "zeroshot", "1", "1")}
    # each records how often the stand-in's top guess was right on the pool
    for r in rows:
      key = sweep.Cell(r["dataset"], r["pool"], r["target"], int(r["budget"]),
                       r["method"], r["balancing"] == "1", False, 0, 1, r["features"],
                       r["guided"] == "1").key
      with open(os.path.join(workdir, "cells", key + ".json")) as f:
        assert 0.2 < json.load(f)["zeroshot_top1"] <= 1.0
    assert "zero-shot stand-in: offline_target imbalanced pool" in outputs[16]


def test_cells_csv_columns_and_plots(tables_workdir):
  workdir, _ = tables_workdir
  with open(os.path.join(workdir, "cells.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  need = ("dataset,budget,method,balancing,ensemble,target,seed,acc_t,"
          "classes_found,imbalance_ratio").split(",")
  assert all(k in rows[0] for k in need)
  assert {r["balancing"] for r in rows} == {"0", "1"}
  assert {r["ensemble"] for r in rows} == {"0", "1"}
  assert {r["target"] for r in rows} == {"svm", "finetune", "svm_ssl"}
  assert {r["features"] for r in rows} == {"source", "ssl", "zeroshot"}
  assert {r["guided"] for r in rows} == {"0", "1"}
  assert {r["method"] for r in rows} == {"random", "entropy_inv_div", "coreset", "full",
                                         "typiclust", "probcover", "maxherding",
                                         "uherding", "dropquery", "direct"}
  plots = os.listdir(os.path.join(workdir, "plots"))
  assert any(p.startswith("acc_vs_budget_offline_far") for p in plots)
  assert any(p.startswith("class_counts_offline_target") for p in plots)
  for p in plots:
    with open(os.path.join(workdir, "plots", p), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _seed_workdir(src, dst):
  """A fresh workdir sharing `src`'s trained M_S and cached outputs."""
  os.makedirs(dst)
  for name in ("source", "cache"):
    shutil.copytree(os.path.join(src, name), os.path.join(dst, name))
  shutil.copy(os.path.join(src, "settings.json"), dst)


def test_killed_sweep_resumes_without_recomputing(tables_workdir, tmp_path):
  base, _ = tables_workdir
  # Table 12 ran these cells (imbalanced, before balancing, fine-tuning) already;
  # seed 0's six (two budgets, three methods) leave three to resume after three.
  want = cells_csv(base, dataset="offline_target", pool="imbalanced", balancing=0,
                   ensemble=0, target="finetune", seed=0)
  flags = ["--table=2", "--target=finetune", "--plots=false",
           "--datasets=offline_target", "--seeds=0"]
  work = str(tmp_path / "killed")
  _seed_workdir(base, work)
  proc = subprocess.Popen(command(work, *flags), env=env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  cells_dir = os.path.join(work, "cells")

  def done():  # a cell being written is a ".tmp-" file until its atomic rename
    if not os.path.isdir(cells_dir):
      return []
    return [p for p in os.listdir(cells_dir) if not p.startswith(".tmp-")]

  deadline = time.time() + 300
  while time.time() < deadline and len(done()) < 3:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  finished = {p: os.stat(os.path.join(cells_dir, p)).st_mtime_ns for p in done()}
  assert 3 <= len(finished) < len(want)
  try:  # the rerun: the command's main() here, on the killed process's workdir
    out = run_in_process(work, *flags)
  finally:
    flags_lib.FLAGS.unparse_flags()
  assert f"{len(finished)} of " in out and "cells already done" in out
  for p, mtime in finished.items():  # not recomputed, not rewritten
    assert os.stat(os.path.join(cells_dir, p)).st_mtime_ns == mtime
  assert not [p for p in os.listdir(cells_dir) if p.startswith(".tmp-")]
  assert cells_csv(work) == want


def test_concurrent_shards_equal_one_run(tables_workdir, tmp_path):
  base, _ = tables_workdir
  # The fixture ran Table 9 with the SVM in one unsharded run.
  want = cells_csv(base, pool="balanced", balancing=1, target="svm")
  flags = ["--table=9", "--target=svm", "--plots=false"]
  work = str(tmp_path / "sharded")
  _seed_workdir(base, work)
  procs = [subprocess.Popen(command(work, *flags, f"--shard={i}/2"), env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  for p in procs:
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]
  try:  # the tables of what the two shards wrote (the command's main() here)
    run_in_process(work, *flags, "--render_only")
  finally:
    flags_lib.FLAGS.unparse_flags()
  assert cells_csv(work, balancing=1) == want
  full = dict(pool="balanced", method="full", target="svm")
  assert cells_csv(work, **full) == cells_csv(base, **full)
  with open(os.path.join(work, "tables", "table_9.md")) as f, \
      open(os.path.join(base, "tables", "table_9.md")) as g:
    assert f.read() == g.read()


def test_streamed_pools_give_the_cells_of_pools_in_memory(tables_workdir, tmp_path):
  """--pixels=stream reads the offline pools through their TFDS builder (M_S's
  outputs and the +ens average streamed once, the labeled images decoded again
  for fine-tuning, the Full row included, the test split streamed at each
  evaluation): every cell equals the one computed from arrays in memory."""
  pytest.importorskip("tensorflow_datasets")
  from jaxal.datasets import catalog  # pylint: disable=g-import-not-at-top
  workdir, _ = tables_workdir
  new = str(tmp_path / "stream")
  shutil.copytree(os.path.join(workdir, "source"), os.path.join(new, "source"))
  data = str(tmp_path / "tfds")
  reads = []
  stream = catalog.stream

  def counted(name, split, keep, *args, **kwargs):
    reads.append((name, split, int(keep.sum())))
    return stream(name, split, keep, *args, **kwargs)
  catalog.stream = counted
  try:
    common = ["--methods=random,entropy_inv_div", "--seeds=0", "--budgets=6",
              "--plots=false", "--pixels=stream", f"--data_dir={data}"]
    run_in_process(new, "--table=3", "--datasets=offline_far", *common)
    run_in_process(new, "--table=6", "--datasets=offline_target", "--target=svm",
                   *common)
  finally:
    catalog.stream = stream
    flags.FLAGS.unparse_flags()
  got = cells_csv(new)
  assert {(r["dataset"], r["method"], r["ensemble"]) for r in got} >= {
      ("offline_far", "full", "0"), ("offline_target", "entropy_inv_div", "1")}
  for row in got:
    key = {k: row[k] for k in ("dataset", "pool", "budget", "method", "balancing",
                               "ensemble", "target", "seed", "rounds", "features")}
    assert cells_csv(workdir, **key) == [row], key
  pool = {n for n, split, k in reads if split == "train" and 0 < k < 120}
  assert pool == {"offline_far", "offline_target"}  # pools, not whole splits
  assert ("offline_far", "train", 6) in reads  # a fine-tuning cell's 6 images
  assert {(n, s) for n, s, _ in reads if s == "test"} == {
      ("offline_far", "test"), ("offline_target", "test")}


def table_settings(workdir, table):
  """The `protocol.Settings` that `tables.py --table=N` builds for `workdir`."""
  flags.FLAGS(command(workdir, f"--table={table}")[1:])
  try:
    return tables_command.table_run(table, (table,)).settings
  finally:
    flags.FLAGS.unparse_flags()


def test_killed_outputs_resume_from_their_last_chunk(tables_workdir, tmp_path,
                                                     monkeypatch):
  """M_S's outputs are saved chunk by chunk: killed after 2 chunks of 2 batches,
  the rerun computes only the rest (the +ens average, every snapshot) and ends
  with an uninterrupted run's arrays, bit for bit."""
  from jaxal.experiments import protocol  # pylint: disable=g-import-not-at-top
  from jaxal.models import source  # pylint: disable=g-import-not-at-top
  workdir, _ = tables_workdir
  settings = table_settings(workdir, 6)
  real, batches = source.outputs_by_batch, []

  class Killed(Exception):
    pass

  def counted(*args, die_after=None, **kwargs):
    for out in real(*args, **kwargs):
      if len(batches) == die_after:
        raise Killed()
      batches.append(len(out[0]))
      yield out
  args = ("offline_target", "imbalanced", "train", True)
  runs = {}
  for name in ("whole", "killed"):
    runs[name] = str(tmp_path / name)
    shutil.copytree(os.path.join(workdir, "source"), os.path.join(runs[name], "source"))
  proto = lambda w: protocol.Protocol(settings, w, log=lambda _: None,  # noqa: E731
                                      output_batch=8, output_chunk_batches=2)
  monkeypatch.setattr(source, "outputs_by_batch", counted)
  want = proto(runs["whole"]).outputs(*args)
  total = len(batches)
  assert total >= 6 and sum(batches) == len(want[0])
  batches.clear()
  monkeypatch.setattr(source, "outputs_by_batch",
                      lambda *a, **k: counted(*a, die_after=5, **k))
  with pytest.raises(Killed):
    proto(runs["killed"]).outputs(*args)
  parts = os.path.join(runs["killed"], "cache")
  assert sum(len(fs) for _, _, fs in os.walk(parts)) == 2  # chunks 0 and 1
  batches.clear()
  monkeypatch.setattr(source, "outputs_by_batch", counted)
  got = proto(runs["killed"]).outputs(*args)
  assert len(batches) == total - 4
  for a, b in zip(got, want):
    assert np.array_equal(a, b)
  assert [f for f in os.listdir(parts) if not f.endswith(".npz")] == []  # parts gone


def test_protocol_caches_are_bounded_keyed_and_keep_no_protocol_alive(tables_workdir,
                                                                      tmp_path):
  """The cells' shared state is cached by what it depends on, in caches of a
  stated size, and a Protocol that is dropped is freed (functools.lru_cache on
  its methods kept every Protocol and its pools alive)."""
  import gc  # pylint: disable=g-import-not-at-top
  import weakref  # pylint: disable=g-import-not-at-top
  from jaxal.experiments import _memo, protocol  # pylint: disable=g-import-not-at-top
  made = []
  cache = _memo.Bounded(2)
  for key in ("a", "b", "a", "c", "b"):
    cache.get(key, lambda k=key: made.append(k) or k.upper())
  assert made == ["a", "b", "c", "b"]  # "a" was used again, so "b" went first
  assert list(cache.items) == ["c", "b"]
  workdir, _ = tables_workdir
  settings = table_settings(workdir, 2)
  shutil.copytree(os.path.join(workdir, "source"), str(tmp_path / "source"))
  proto = protocol.Protocol(settings, str(tmp_path), log=lambda _: None)
  pool = proto.pool("offline_target", "imbalanced")
  assert proto.pool("offline_target", "imbalanced") is pool
  feats, _ = proto.outputs("offline_target", "imbalanced", "train", False)
  assert proto.outputs("offline_target", "imbalanced", "train", False)[0] is feats
  src = proto.source_model()
  assert isinstance(src, protocol.SourceModel) and proto.source_model() is src
  ref = weakref.ref(proto)
  del proto, pool, src
  gc.collect()
  assert ref() is None
  # a setting that cannot work names the settings' field; the runner adds "--"
  bad = protocol.Protocol(dataclasses.replace(settings, data="real",
                                              source_workdir=str(tmp_path / "none")),
                          str(tmp_path / "w"))
  with pytest.raises(protocol.SettingsError, match=r"^source_workdir: .*config\.json"):
    bad.source_config()


def test_rounds_beside_single_shot_in_one_workdir(tables_workdir):
  """--rounds=2 adds iterative cells and their own table; the single-shot
  tables and cells are untouched. Round 1 is the single shot of half the
  budget, round 2 comes from the SVM target trained on round 1's labels."""
  workdir, _ = tables_workdir
  with open(os.path.join(workdir, "tables", "table_2.md")) as f:
    single = f.read()
  try:
    out = run_in_process(workdir, "--table=2", "--target=svm", "--rounds=2",
                         "--plots=false")
  finally:
    flags.FLAGS.unparse_flags()
  assert "Iterative selection in 2 rounds" in out
  with open(os.path.join(workdir, "tables", "table_2.md")) as f:
    assert f.read() == single
  with open(os.path.join(workdir, "tables", "table_2_rounds2.md")) as f:
    assert "Table 2." in f.read()
  cells = os.path.join(workdir, "cells")
  key = "offline_target__imbalanced__svm__b{}__entropy_inv_div__bal0__ens0__s0{}.json"
  with open(os.path.join(cells, key.format(12, "__r2"))) as f:
    iterative = json.load(f)
  with open(os.path.join(cells, key.format(6, ""))) as f:
    half = json.load(f)
  assert iterative["rounds"] == 2 and len(set(iterative["selected"])) == 12
  assert iterative["selected"][:6] == half["selected"]
  assert cells_csv(workdir, rounds=2) and all(
      r["method"] != "full" for r in cells_csv(workdir, rounds=2))
