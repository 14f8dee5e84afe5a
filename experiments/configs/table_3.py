"""Table 3: ACC_t on the imbalanced pools, after balancing (main paper Table 3;
rows copied in supplement Table 7).

    python3 run.py exp tables --table=3 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=3          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(3)
