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

About 3.5 minutes on 2 CPU cores (README gives the measured times). Every
finished cell is saved at once: an interrupted run started again resumes where it
stopped (M_S from its checkpoint).
"""

from __future__ import annotations

import sys

from absl import app, flags

from experiments import tables

flags.FLAGS.set_default("workdir", "workdir/quickstart")
QUICKSTART_TABLES = (2, 3, 4, 5)


def main(argv):
  del argv
  return tables.main([], table=2, run_tables=QUICKSTART_TABLES)


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
