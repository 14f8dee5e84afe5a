"""Table 5: Classes found and imbalance ratio on the imbalanced pools, after
balancing (main paper Table 5; no published numbers at hand).

    python3 run.py exp tables --table=5 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=5          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(5)
