"""Table 2: ACC_t on the imbalanced pools, before balancing (main paper Table 2;
its rows random, ent/ls_inv_div and core-set are copied in supplement Table 6).

    python3 run.py exp tables --table=2 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=2          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(2)
