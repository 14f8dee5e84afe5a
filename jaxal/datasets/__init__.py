"""Datasets of the paper and of the project (method guide §1-2).

The only part of jaxal that imports TensorFlow or TFDS, and only inside the
functions that need them: `import jaxal.datasets` works where only JAX is
installed, and the offline data and digits load there too (`load_arrays`).

    from jaxal import datasets
    pool = datasets.load_arrays("offline_target", "train")
    counts = datasets.imbalanced_counts(np.bincount(pool.labels))  # ir 0.813
    keep = datasets.subset_indices(pool.labels, counts, seed=0)

Modules: `imbalance` (induction, balanced subsets), `procedural` (the offline
images), `catalog` (names, loaders, clear errors), `pipeline` (train/eval
batches), `builders` (TFDS builders: offline, MIT-67; imports TFDS).
"""

from jaxal.datasets.catalog import (SPECS, ArraySplit, DatasetNotFoundError,
                                    DatasetSpec, builder, check_prepared,
                                    imn100_classes, load,
                                    load_arrays, load_labels, num_classes, spec)
from jaxal.datasets.imbalance import (BALANCED_PER_CLASS, DEFAULT_RATIO,
                                      balanced_indices, bin_means, default_profile,
                                      imbalance_ratio_of_counts, imbalanced_counts,
                                      load_profile, subset_indices)
from jaxal.datasets.procedural import OfflineConfig

__all__ = [
    "SPECS", "ArraySplit", "DatasetNotFoundError", "DatasetSpec", "builder",
    "check_prepared",
    "imn100_classes", "load", "load_arrays", "load_labels", "num_classes", "spec",
    "BALANCED_PER_CLASS", "DEFAULT_RATIO", "balanced_indices", "bin_means",
    "default_profile", "imbalance_ratio_of_counts", "imbalanced_counts",
    "load_profile", "subset_indices", "OfflineConfig",
]
