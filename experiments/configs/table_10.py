"""Table 10: Classes found and imbalance ratio on the balanced subsets, before
balancing (supplement Table 10).

    python3 run.py exp tables --table=10 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=10          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(10)
