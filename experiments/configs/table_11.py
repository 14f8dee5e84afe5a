"""Table 11: Classes found and imbalance ratio on the balanced subsets, after
balancing (supplement Table 11).

    python3 run.py exp tables --table=11 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=11          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(11)
