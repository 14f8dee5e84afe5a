"""jaxal: active learning for imbalanced image datasets in JAX.

Reimplements Aggarwal, Popescu and Hudelot, "Active Learning for Imbalanced
Datasets" (WACV 2020). Importing jaxal never imports TensorFlow or TFDS; only
`jaxal.datasets` does, lazily, inside its functions.
"""

from jaxal import _xla_cpu

_xla_cpu.apply()  # before anything below can start a JAX backend

from jaxal import acquisition, balancing, metrics  # noqa: E402

__version__ = "0.1.0"
__all__ = ["acquisition", "balancing", "metrics"]
