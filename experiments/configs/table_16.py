"""Table 16 (beyond the paper): the target classes' names as zero-shot guesses.
The paper ranks the pool by M_S's *source*-class probabilities and Algorithm 1
spreads picks over M_S's source classes; here the same functions also run on
the zero-shot *target*-class probabilities of an image-text model ("[ZS]"
rows: the uncertainty functions over the target classes, Algorithm 1 over the
guessed target classes; the features stay M_S's), each before balancing,
after the paper's balancing step (+bal) and after the step led by the
zero-shot guesses until every class has an answer (+guess, `jaxal.guesses`).
Random and core-set read no probabilities: they have no [ZS] row, and their
+guess rows show what the guesses add to them. The M_S rows without +guess
are Tables 2-5's cells, reused in one --workdir.

Real data needs a SigLIP source (`jaxal import-source --arch=siglip`), whose
text tower reads each dataset's class names; offline, a stand-in image-text
model (class centroids of M_S's features plus noise, `--zeroshot_noise`) lets
the command and the table run on CPU.

    python3 run.py exp tables --table=16          # offline data, stand-in guesses
    python3 run.py exp tables --table=16 --data=real --data_dir=DATA_DIR \\
        --source_workdir=work/ms_imagenet --workdir=work/tables_real \\
        --zeroshot_source=work/siglip2
"""

from experiments.configs import common


def get_config() -> dict:
  return common.base(16)
