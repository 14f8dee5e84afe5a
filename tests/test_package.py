"""Package-level contracts: no TensorFlow on import, README's commands."""

import os
import re
import subprocess
import sys

from tests.conftest import ROOT  # noqa: E402


def test_import_jaxal_loads_no_tensorflow():
  code = ("import sys, jaxal, jaxal.acquisition, jaxal.balancing, jaxal.metrics, jaxal.datasets; "
          "bad = [m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules];"
          "print(bad); sys.exit(1 if bad else 0)")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": ROOT})
  assert out.returncode == 0, out.stdout + out.stderr


def test_readme_first_block_is_the_two_commands():
  with open(os.path.join(ROOT, "README.md")) as f:
    block = re.search(r"```[^\n]*\n(.*?)```", f.read(), re.S).group(1)
  assert block.strip().splitlines() == ["python3 run.py quickstart",
                                        "python3 run.py test"]
  with open(os.path.join(ROOT, ".ci", "run")) as f:
    assert "python3 run.py test" in f.read()


def test_bench_smoke():
  env = {**os.environ, "PYTHONPATH": ROOT}
  bench = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bench", "acquisition.py"), "--quick"],
      capture_output=True, text=True, env=env, timeout=300)
  assert bench.returncode == 0, bench.stderr[-2000:]
  last = bench.stdout.strip().splitlines()[-1]
  assert re.fullmatch(r"kcenter_speedup_vs_sklearn_per_step: \d+\.\d+", last), last
  assert "identical indices     : True" in bench.stdout
  assert "cpu: " in bench.stdout and "xla:cpu routing: " in bench.stdout


def test_pool_map_bench_smoke():
  """`bench pool_map` at 3,000 images: the server and Chromium measured, the
  goals said, the last line the refresh time."""
  env = {**os.environ, "PYTHONPATH": ROOT}
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bench", "pool_map.py"), "--pool=3000",
       "--answers=5", "--dim=16"], capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "navigation to the first draw" in out.stdout and "5/5 answers drawn" in out.stdout
  last = out.stdout.strip().splitlines()[-1]
  assert re.fullmatch(r"map_draw_ms_at_3000: \d+\.\d", last), last


def test_vit_embed_bench_smoke():
  """`bench vit_embed --quick`: the three encoders (1 layer each) through `jaxal
  embed`; against transformers where torch and transformers are installed, else
  jaxal's side alone and the ratio said to be unavailable (CI)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  env = {**os.environ, "PYTHONPATH": ROOT}
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bench", "vit_embed.py"), "--quick"],
      capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.strip().splitlines()
  assert "cpu: " in out.stdout and "xla:cpu routing: " in out.stdout
  names = ("siglip2_b16", "dinov2_s14", "dinov2_b14")
  for name in names:
    assert f"== {name}: " in out.stdout, out.stdout
  assert out.stdout.count("jaxal embed (end to end)") == 3, out.stdout
  reference = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
  ratio = r"\d+\.\d+" if reference else r"unavailable \(PyTorch/transformers not installed.*\)"
  for name, line in zip(names, lines[-4:-1]):
    assert re.fullmatch(rf"{name}_speed_ratio_vs_transformers: {ratio}", line), line
  assert re.fullmatch(rf"vit_embed_speed_ratio_vs_transformers: {ratio}", lines[-1]), \
      lines[-1]
  if reference:  # the same weights on both sides
    errs = re.findall(r"max \|jaxal - transformers \(sdpa\)\| / max \|transformers\| "
                      r"= (\S+)", out.stdout)
    assert len(errs) == 3 and all(float(e) < 1e-4 for e in errs), errs


def test_step_profile_bench_names_the_operations_of_a_train_step():
  env = {**os.environ, "PYTHONPATH": ROOT}
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bench", "step_profile.py"), "--width=4",
       "--batch=8", "--size=16", "--profile_steps=2", "--top=3"],
      capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert re.search(r"batch 8: [\d,]+ images/s", out.stdout), out.stdout
  # the kinds table and the costliest operations, with their HLO shapes
  assert re.search(r"^\s+\d+\.\d+\s+\d+\.\d+%\s+\d+\.\d+\s+\S*convolution",
                   out.stdout, re.M), out.stdout
  costliest = out.stdout.split("costliest single operations")[1].strip().splitlines()[1:]
  assert len(costliest) == 3 and all("f32[" in line for line in costliest), costliest


def test_quickstart_end_to_end_and_resume(tmp_path):
  """The main job at tiny sizes: Tables 2-5 on both offline targets with their
  plots; a rerun resumes (nothing retrained or recomputed, same tables)."""
  env = {**os.environ, "PYTHONPATH": ROOT}
  args = [sys.executable, os.path.join(ROOT, "experiments", "quickstart.py"),
          f"--workdir={tmp_path}", "--offline_source_classes=6",
          "--offline_target_classes=5", "--offline_source_per_class=16",
          "--offline_target_per_class=24", "--offline_test_per_class=4", "--width=4",
          "--epochs=2", "--snapshot_every=1", "--batch_size=32", "--budgets=10,20",
          "--seeds=0,1",
          "--methods=random,entropy_inv_div,coreset", "--finetune_epochs=1"]
  first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  for n in (2, 3, 4, 5):
    assert f"table {n}: {tmp_path}/tables/table_{n}.md" in first.stdout
  assert f"cells: {tmp_path}/cells.csv" in first.stdout
  assert "| G_AL |" in first.stdout and "imbalance_ratio" in first.stdout
  assert first.stdout.count("plot: ") == 4  # 2 targets x (accuracy, class counts)
  again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "epoch 1/2" not in again.stdout  # M_S resumed from its checkpoint
  assert "cells already done" in again.stdout and "[1/" not in again.stdout
  table = lambda out: out[out.index("Table 2."):]  # noqa: E731
  assert table(again.stdout) == table(first.stdout)
