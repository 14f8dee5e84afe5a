"""jaxal: active learning for imbalanced image datasets in JAX.

Reimplements Aggarwal, Popescu and Hudelot, "Active Learning for Imbalanced
Datasets" (WACV 2020). Importing jaxal never imports TensorFlow or TFDS; only
`jaxal.datasets` does, lazily, inside its functions.
"""

from jaxal import acquisition, balancing, metrics

__version__ = "0.1.0"
__all__ = ["acquisition", "balancing", "metrics"]
