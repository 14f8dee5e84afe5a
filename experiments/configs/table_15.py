"""Table 15 (beyond the paper): selection over rounds, the target model
retrained on the labels gathered so far before each round after the first
(`jaxal.rounds`). Table 14's layout — M_S's features and SimCLR's ([SSL] rows),
the SVM target on each (columns "svm" and "svm_ssl"), before and after (+bal)
the balancing step, which runs in every round — with the methods that read the
target model between rounds: UHerding (ICLR 2025; round 1 its cold start),
DropQuery (TMLR 2024; the SVM as its linear probe) and DIRECT (ICML 2025; round
1 random, as in its authors' benchmark; it labels as it selects, so it has no
+bal row).

    python3 run.py exp tables --table=15          # offline data, 3 rounds
    python3 run.py exp tables --table=15 --rounds=5 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real \\
        --ssl_width=64 --ssl_epochs=500 --ssl_batch_size=512 --ssl_temperature=0.1
"""

from experiments.configs import common
from experiments.configs.table_13 import COLD_START

TARGET_AWARE = ("uherding", "dropquery", "direct")


def get_config() -> dict:
  return common.base(15, methods=common.PAPER_METHODS + COLD_START + TARGET_AWARE,
                     rounds=3)
