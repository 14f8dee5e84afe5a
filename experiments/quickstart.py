r"""Quickstart: the paper's Tables 2-5 on the offline data, end to end on a CPU.

    python3 run.py quickstart            # README's main command

It is `python3 run.py exp tables` for Tables 2, 3, 4 and 5 at once (every flag of
`experiments/tables.py` works here too), on the project's offline data:

1. trains the source model M_S (ResNet-18, width 8, snapshots) on the offline
   source part (40 classes of shared shapes, colours and textures);
2. induces the paper's imbalance (ratio 0.813) on two targets: `offline_target`
   (other classes of the same primitives: strong transfer, like CIFAR-100) and
   `offline_far` (novel primitives: weak transfer, like Food-101);
3. runs random, entropy_inv_div, least_confidence_inv_div and core-set at budgets
   40, 80 and 160, before and after the balancing step, random and core-set over
   5 seeds;
4. trains the target model on each selection (the SVM on the near target,
   fine-tuning on the far one, as the paper does for CIFAR-100 and Food-101), and
   the Full row on each whole pool;
5. writes Tables 2-5 (ACC_t with G_AL; classes found and imbalance ratio) as
   markdown, CSV and LaTeX, WORKDIR/cells.csv, and plots.

The cells are shared over `--processes` local processes (shards of one work
directory, as `--shard` shares them over machines; default: one per core, at most
2), because a cell's small models keep one core busy, not two; the other
processes' lines go to WORKDIR/shard_I_of_N.log. The results are the same cells
whatever the number of processes. Every finished cell is saved at once: an
interrupted run started again resumes where it stopped (M_S from its checkpoint).
README gives the measured time.
"""

from __future__ import annotations

import os
import subprocess
import sys

from absl import app, flags

from experiments import tables
from jaxal.errors import InputError
from jaxal.experiments import protocol, runner

FLAGS = flags.FLAGS
flags.DEFINE_integer("processes", None, "Local processes the cells are shared "
                     "over (default: one per core, at most 2).")
FLAGS.set_default("workdir", "workdir/quickstart")
QUICKSTART_TABLES = (2, 3, 4, 5)


def _others(n: int, argv: list) -> list:
  """Shards 1..n-1 of the cells, each a process running this script with the
  same flags; their output goes to a log file each in the work directory."""
  os.makedirs(FLAGS.workdir, exist_ok=True)
  procs = []
  for i in range(1, n):
    log = os.path.join(FLAGS.workdir, f"shard_{i}_of_{n}.log")
    print(f"quickstart: shard {i}/{n} in another process (its lines: {log})")
    with open(log, "w") as f:
      procs.append(subprocess.Popen(
          [sys.executable, os.path.abspath(__file__), *argv, f"--shard={i}/{n}",
           "--processes=1", "--render=false"], stdout=f, stderr=subprocess.STDOUT))
  return procs


def _train_source() -> int:
  """M_S, before the other processes start: they then read its checkpoint
  instead of waiting on its lock while this one trains (and its epochs print
  here); 2 on bad flags."""
  try:
    run = tables.table_run(2, QUICKSTART_TABLES)
    runner.check(run)
  except InputError as e:
    print(f"error: {tables.message(e)}", file=sys.stderr)
    return 2
  protocol.Protocol(run.settings, run.workdir, pixels=run.pixels).source_model()
  return 0


def main(argv):
  n = FLAGS.processes if FLAGS.processes is not None else min(2, os.cpu_count() or 1)
  if n < 1:
    print(f"error: --processes must be >= 1, got {n}.", file=sys.stderr)
    return 2
  if n == 1 or FLAGS.shard != "0/1" or FLAGS.render_only:
    return tables.main([], table=2, run_tables=QUICKSTART_TABLES)
  del argv  # the flags: the other processes get this one's command line
  if _train_source():
    return 2
  procs = _others(n, sys.argv[1:])
  try:
    FLAGS.shard, FLAGS.render = f"0/{n}", False
    code = tables.main([], table=2, run_tables=QUICKSTART_TABLES)
    codes = [p.wait() for p in procs]
  finally:
    for p in procs:  # an interrupt or a crash here stops the other shards too
      if p.poll() is None:
        p.terminate()
        p.wait()
    FLAGS.shard, FLAGS.render = "0/1", True
  if code or any(codes):
    failed = [i + 1 for i, c in enumerate(codes) if c]
    print(f"error: quickstart: shard(s) {failed or [0]} of {n} failed; see "
          f"{FLAGS.workdir}/shard_*_of_{n}.log. A rerun resumes.", file=sys.stderr)
    return code or 1
  FLAGS.render_only = True  # every shard done: the tables of all the cells
  return tables.main([], table=2, run_tables=QUICKSTART_TABLES)


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
