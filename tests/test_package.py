"""Package-level contracts: no TensorFlow on import, README's commands."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_quickstart_and_bench_smoke(tmp_path):
  env = {**os.environ, "PYTHONPATH": ROOT}
  qs = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "quickstart.py"),
       f"--workdir={tmp_path}", "--data=generated", "--num_classes=6",
       "--largest_class=60", "--smallest_class=6", "--test_per_class=5",
       "--budgets=12,24", "--methods=random,entropy_inv_div,coreset"],
      capture_output=True, text=True, env=env, timeout=300)
  assert qs.returncode == 0, qs.stderr[-2000:]
  assert "G_AL" in qs.stdout and os.path.exists(tmp_path / "results.json")
  bench = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bench", "acquisition.py"), "--quick"],
      capture_output=True, text=True, env=env, timeout=300)
  assert bench.returncode == 0, bench.stderr[-2000:]
  last = bench.stdout.strip().splitlines()[-1]
  assert re.fullmatch(r"kcenter_speedup_vs_sklearn_per_step: \d+\.\d+", last), last
  assert "identical indices     : True" in bench.stdout


def test_quickstart_offline_images_end_to_end(tmp_path):
  """The default main job at tiny sizes: trains M_S on offline images with
  snapshots, induces imbalance, acquires, balances, scores; a rerun resumes."""
  env = {**os.environ, "PYTHONPATH": ROOT}
  args = [sys.executable, os.path.join(ROOT, "experiments", "quickstart.py"),
          f"--workdir={tmp_path}", f"--data_dir={tmp_path / 'tfds'}",
          "--num_classes=5", "--num_source_classes=6", "--source_per_class=16",
          "--target_per_class=24", "--test_per_class=4", "--width=4", "--epochs=2",
          "--snapshot_every=1", "--batch_size=32", "--ensemble", "--budgets=10,20",
          "--methods=random,entropy_inv_div,coreset"]
  first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "G_AL" in first.stdout and "imbalance ratio" in first.stdout
  snaps = [d for d in os.listdir(tmp_path) if d.startswith("source_")]
  assert len(snaps) == 1
  assert sorted(os.listdir(tmp_path / snaps[0] / "snapshots")) == ["1", "2"]
  again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "epoch 1/2" not in again.stdout  # resumed: nothing retrained
  table = lambda out: out[out.index("Full"):]
  assert table(again.stdout) == table(first.stdout)
