"""Table 8: ACC_t on the balanced subsets (200 images per class, 80 for MIT-67),
before balancing (supplement Table 8).

    python3 run.py exp tables --table=8 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=8          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(8)
