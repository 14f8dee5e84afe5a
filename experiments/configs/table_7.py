"""Table 7: ACC_t with the snapshot ensemble (+ens), imbalanced pools, after
balancing (supplement Table 7).

    python3 run.py exp tables --table=7 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=7          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(7)
