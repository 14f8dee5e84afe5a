"""Defaults shared by the table configs (`table_N.py`, one per paper table).

A config is a dict; `experiments/tables.py` overrides it from flags. `real` holds
the paper's setting, `offline` the same protocol on the project's offline data at
CPU size (two targets: `offline_target` shares the source's visual primitives,
`offline_far` is built from primitives the source never saw).
"""

PAPER_METHODS = ("random", "entropy_inv_div", "least_confidence_inv_div", "coreset")
REAL_DATASETS = ("food101", "cifar100", "imn100", "mit67")
OFFLINE_DATASETS = ("offline_target", "offline_far")


def base(table: int, **overrides) -> dict:
  config = {
      "table": table,
      "methods": PAPER_METHODS,
      "seeds": (0, 1, 2, 3, 4),  # random and core-set: mean and std over these
      "real": {"datasets": REAL_DATASETS, "budgets": (500, 1000, 2000)},
      # Target models: `jaxal.experiments.protocol.TargetSettings` fields; unset ones keep
      # its defaults (fine-tuning 30 epochs, batch 64, learning rate 0.01).
      "offline": {"datasets": OFFLINE_DATASETS, "budgets": (40, 80, 160),
                  "targets": {"finetune_epochs": 8, "finetune_batch_size": 32,
                              "finetune_learning_rate": 0.02}},
  }
  config.update(overrides)
  return config
