"""Table 12: ACC_t of the SVM on M_S's features against fine-tuning M_S, on the
imbalanced pools of Food-101 and CIFAR-100, before balancing (supplement Table
12; its Food-101 fine-tuning and CIFAR-100 SVM columns are the main tables').

    python3 run.py exp tables --table=12 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
    python3 run.py exp tables --table=12          # offline data, CPU size
"""

from experiments.configs import common


def get_config() -> dict:
  config = common.base(12)
  config["real"] = {**config["real"], "datasets": ("food101", "cifar100")}
  return config
