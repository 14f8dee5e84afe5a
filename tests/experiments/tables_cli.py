"""The table command on tiny offline data, for the experiments' tests: its flags,
in a subprocess (`run`) or in this process (`run_in_process`), and cells.csv."""

import contextlib
import csv
import io
import os
import subprocess
import sys

from absl import flags

from experiments import tables as tables_command
from tests.conftest import ROOT, subprocess_env

TINY = ["--offline_source_classes=8", "--offline_target_classes=5",
        "--offline_source_per_class=24", "--offline_target_per_class=24",
        "--offline_test_per_class=6", "--epochs=2", "--snapshot_every=1", "--width=4",
        "--batch_size=64",
        "--budgets=6,12", "--seeds=0,1", "--methods=random,entropy_inv_div,coreset",
        "--finetune_epochs=1", "--finetune_batch_size=8",
        "--ssl_width=4", "--ssl_epochs=1", "--ssl_batch_size=16"]


def command(workdir, *flags):
  return [sys.executable, os.path.join(ROOT, "experiments", "tables.py"),
          f"--workdir={workdir}", *TINY, *flags]


def env():
  return subprocess_env()


def run(workdir, *flags, check=True):
  out = subprocess.run(command(workdir, *flags), env=env(), capture_output=True,
                       text=True, timeout=600)
  if check and out.returncode != 0:
    raise AssertionError(f"exit {out.returncode}\n{out.stdout[-3000:]}\n"
                         f"{out.stderr[-3000:]}")
  return out


def cells_csv(workdir, **match):
  """cells.csv rows matching `match`, without the wall-time column (the rest
  must match exactly)."""
  with open(os.path.join(workdir, "cells.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
  for r in rows:  # written only when some cell selected from other features
    r.setdefault("features", "source")  # or balanced with guesses
    r.setdefault("guided", "0")
  rows = [r for r in rows if all(r[k] == str(v) for k, v in match.items())]
  for r in rows:
    r.pop("seconds")
  return rows


def run_in_process_status(workdir, *args):
  """(exit code, stdout, stderr) of the table command's main() in this process,
  flags parsed here and reset after: for its checks and messages, without a
  Python and JAX start per case (`run` covers the command line itself)."""
  argv = command(workdir, *args)[1:]
  flags.FLAGS.unparse_flags()
  out, err = io.StringIO(), io.StringIO()
  try:
    flags.FLAGS(argv)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      code = tables_command.main([])
  finally:
    flags.FLAGS.unparse_flags()
  return code, out.getvalue(), err.getvalue()


def run_in_process(workdir, *args, tables=None):
  """The table command's own main(), flags parsed here: one process, so JAX
  starts and compiles once for all tables (the subprocess tests below cover
  the command line itself). `tables`: several tables in one run, as the
  quickstart runs 2-5 (M_S loaded once), with the first one's config."""
  argv = command(workdir, *args)[1:]
  flags.FLAGS.unparse_flags()
  flags.FLAGS(argv)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = tables_command.main([], table=tables[0] if tables else None,
                               run_tables=tables)
  assert code == 0, out.getvalue()[-3000:]
  return out.getvalue()
