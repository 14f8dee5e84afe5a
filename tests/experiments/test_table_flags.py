"""The table command's refusals before any work (bad flags, missing real data,
sources that cannot give a table's rows) and the real-data path on TFDS mock
data: each in a work directory of its own. The refusals call the command's
main() in this process (`refused`: its exit code and stderr, one JAX start for
all); `test_a_bad_flag_on_the_command_line_exits_2` runs the command line
itself, in a subprocess, for its exit code and message."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags

from tests.conftest import ROOT
from tests.experiments.tables_cli import (cells_csv, env, run, run_in_process,
                                          run_in_process_status)


def refused(workdir, *args):
  """The command's main() in this process on these flags: its exit code,
  stdout and stderr, as `run(..., check=False)` gives a subprocess's."""
  code, stdout, stderr = run_in_process_status(workdir, *args)
  return subprocess.CompletedProcess(args, code, stdout, stderr)


@pytest.mark.parametrize("flags,message", [
    (["--table=2", "--methods=random,entropy_magic"],
     "--methods: unknown method 'entropy_magic'"),
    (["--table=8", "--budgets=6,100000"], "--budgets: 100000 is larger than the "
     "balanced pool of offline_target"),
    (["--table=2", "--datasets=offline_target,food101"],
     "--datasets: unknown dataset 'food101' for data=offline"),
    (["--table=17"], "--table must be one of 2-16"),
    (["--table=16", "--zeroshot_noise=-1"], "--zeroshot_noise must be a number >= 0"),
    (["--table=16", "--guess_weight=-0.5"], "--guess_weight must be a number >= 0"),
    (["--table=16", "--zeroshot_source=/nonexistent/siglip"],
     "--zeroshot_source: source /nonexistent/siglip has no text tower"),
    (["--table=16", "--zeroshot_prompts=/nonexistent/prompts.txt"],
     "--zeroshot_prompts '/nonexistent/prompts.txt' does not exist"),
    (["--table=15", "--rounds=1"], "--rounds: table 15 compares selection over rounds"),
    (["--table=2", "--methods=random,direct"], "--methods: method 'direct' labels "
     "around the target model's thresholds"),
    (["--table=2", "--rounds=2", "--methods=dropquery", "--target=finetune"],
     "--target: method 'dropquery' reads the target model's linear head"),
    (["--table=14", "--ssl_temperature=0"], "--ssl_temperature must be > 0"),
    (["--table=14", "--ssl_batch_size=100000"], "--ssl_batch_size=100000 exceeds"),
    (["--table=2", "--dedupe=0"], "--dedupe must be a number > 0"),
    (["--table=2", "--shard=2/2"], "--shard"),
    (["--table=2", "--seeds=0,-1"], "--seeds: seed must lie in [0, 2**32)"),
    (["--table=2", "--batch_size=400"], "--batch_size=400: M_S's batch must be"),
    (["--table=6", "--data=real", "--data_dir=/nonexistent/jaxal-data"],
     "--data=real needs data that is not here (nothing was run)"),
])
def test_bad_flags_stop_before_any_work(tmp_path, flags, message):
  workdir = str(tmp_path / "w")
  out = refused(workdir, *flags)  # an exception would propagate: no traceback
  assert out.returncode == 2, out.stdout + out.stderr
  assert message in out.stderr
  assert "Traceback" not in out.stderr
  assert not os.path.exists(workdir)  # nothing was written


def test_real_data_message_says_what_to_get(tmp_path):
  out = refused(str(tmp_path / "w"), "--table=2", "--data=real",
                "--data_dir=/nonexistent/jaxal-data")
  assert out.returncode == 2
  assert "source_workdir is not set" in out.stderr
  assert "tfds build food101" in out.stderr and "ILSVRC2012_img_train.tar" in out.stderr
  assert "TrainImages.txt" in out.stderr  # MIT-67's manual files


def test_an_imported_imagenet_source_is_refused_for_imn100_and_ens(tmp_path):
  """An ImageNet-1k model has seen IMN-100's classes; one imported model has no
  snapshots for +ens. Both refused before any work, saying why and how."""
  src = tmp_path / "src"
  src.mkdir()
  (src / "config.json").write_text(json.dumps({"kind": "pretrained", "arch": "resnet18",
                                               "image_size": 224}))
  common = ["--data=real", f"--source_workdir={src}", "--data_dir=/nonexistent/x"]
  out = refused(str(tmp_path / "w"), "--table=2", "--datasets=imn100", *common)
  assert out.returncode == 2 and "--allow_source_seen_target" in out.stderr, \
      out.stderr[-2000:]
  assert "trained on IMN-100's 100 classes" in out.stderr
  out = refused(str(tmp_path / "w"), "--table=6", "--datasets=cifar100", *common)
  assert out.returncode == 2 and "no training snapshots" in out.stderr
  out = refused(str(tmp_path / "w"), "--table=2", "--datasets=imn100", *common,
                "--allow_source_seen_target")
  assert out.returncode == 2 and "--allow_source_seen_target" not in out.stderr
  assert "imagenet2012" in out.stderr or "ILSVRC" in out.stderr  # data missing next
  assert not os.path.exists(tmp_path / "w")
  # A SimCLR encoder (jaxal pretrain) has features and no probabilities.
  (src / "config.json").write_text(json.dumps({"kind": "simclr", "arch": "resnet18",
                                               "image_size": 32}))
  out = refused(str(tmp_path / "w"), "--table=2", "--datasets=cifar100", *common,
                "--methods=random,entropy_inv_div")
  assert out.returncode == 2 and "entropy_inv_div need M_S's source-class " \
      "probabilities" in out.stderr, out.stderr[-2000:]
  # A foundation encoder (import-source --arch=dinov2|siglip): the same, and no
  # fine-tuned target (jaxal fine-tunes its ResNets only).
  (src / "config.json").write_text(json.dumps({"kind": "foundation", "arch": "dinov2",
                                               "image_size": 224}))
  out = refused(str(tmp_path / "w"), "--table=2", "--datasets=cifar100", *common,
                "--methods=random,margin")
  assert out.returncode == 2 and "margin need M_S's source-class probabilities" \
      in out.stderr and "dinov2 foundation encoder" in out.stderr, out.stderr[-2000:]
  out = refused(str(tmp_path / "w"), "--table=2", "--datasets=food101", *common,
                "--methods=random")
  assert out.returncode == 2 and "fine-tuned target" in out.stderr \
      and "--target=svm" in out.stderr, out.stderr[-2000:]


def test_real_data_path_end_to_end_on_tfds_mock_data(tmp_path, monkeypatch):
  """--data=real through TFDS (mocked CIFAR-100), with M_S from a real
  train_source workdir and its snapshots for +ens; published numbers beside ours
  (one budget, 500: the paper's first, which has them; each cell fine-tunes)."""
  tfds = pytest.importorskip("tensorflow_datasets")
  source = str(tmp_path / "ms")
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "train_source.py"),
       "--dataset=digits", f"--workdir={source}", "--width=4", "--epochs=2",
       "--snapshot_every=1", "--batch_size=32", "--schedule=cosine"],
      env=env(), capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  # mock_data replaces reading, not TFDS's "is it on disk" check.
  monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
  workdir = str(tmp_path / "tables")
  with tfds.testing.mock_data(num_examples=1500):  # a pool of ~680 > 500
    try:
      text = run_in_process(
          workdir, "--table=6", "--data=real", "--datasets=cifar100",
          f"--source_workdir={source}", "--budgets=500", "--seeds=0",
          "--methods=random,entropy_inv_div", "--plots=false")
    finally:
      flags.FLAGS.unparse_flags()
  assert "cells in shard 0/1 (real data" in text
  with open(os.path.join(workdir, "tables", "table_6.md")) as f:
    md = f.read()
  assert "| random | acc_t |" in md and "entropy_inv_div +ens" in md
  assert "[27.31]" in md and "[34.67]" in md and "[59.49]" in md  # Table 6's
  rows = cells_csv(workdir, ensemble=1)
  assert rows and all(r["method"] == "entropy_inv_div" for r in rows)
  cached = os.listdir(os.path.join(workdir, "cache"))
  assert any("_ens_" in c for c in cached) and any("_single_" in c for c in cached)


def test_a_bad_flag_on_the_command_line_exits_2(tmp_path):
  out = run(str(tmp_path), "--table=15", "--rounds=0", check=False)
  assert out.returncode == 2 and "--rounds must be an int >= 1" in out.stderr, \
      out.stderr
  assert "Traceback" not in out.stderr
  assert not os.listdir(tmp_path)
