"""Table 9: ACC_t on the balanced subsets, after balancing (supplement Table 9).

    python3 run.py exp tables --table=9 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=9          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(9)
