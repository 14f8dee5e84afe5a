"""Table 13 (beyond the paper): the cold-start acquisition functions that followed
it, TypiClust (ICML 2022), ProbCover (NeurIPS 2022) and MaxHerding (ECCV 2024),
beside random, the paper's two best and core-set on the imbalanced pools, each
before and after the balancing step, with ACC_t (G_AL), classes found and the
imbalance ratio. Same protocol, sharding, resume and plots as Tables 2-12; the
cells it shares with Tables 2-5 are reused in one --workdir.

    python3 run.py exp tables --table=13          # offline data, CPU size
    python3 run.py exp tables --table=13 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real
"""

from experiments.configs import common

COLD_START = ("typiclust", "probcover", "maxherding")


def get_config() -> dict:
  return common.base(13, methods=common.PAPER_METHODS + COLD_START)
