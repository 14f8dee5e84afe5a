"""Table 14 (beyond the paper): the cold-start functions in their own papers'
setting. TypiClust and ProbCover state that their advantage comes from
self-supervised features of the pool itself; here random, core-set, TypiClust,
ProbCover and MaxHerding select, and the balancing step balances, on the
features of SimCLR pretrained on each target pool ("[SSL]" rows), beside every
method on M_S's outputs (the paper's entropy_inv_div and
least_confidence_inv_div need M_S's probabilities, so they have no [SSL] row).
Each selection is scored by the linear SVM on M_S's features (columns "svm")
and on SimCLR's ("svm_ssl"), before and after (+bal) balancing, with ACC_t
(G_AL), classes found and the imbalance ratio. The M_S rows with the svm target
are Table 13's cells, reused in one --workdir.

    python3 run.py exp tables --table=14          # offline data, CPU size
    python3 run.py exp tables --table=14 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real \\
        --ssl_width=64 --ssl_epochs=500 --ssl_batch_size=512 --ssl_temperature=0.1
"""

from experiments.configs import common
from experiments.configs.table_13 import COLD_START


def get_config() -> dict:
  return common.base(14, methods=common.PAPER_METHODS + COLD_START)
