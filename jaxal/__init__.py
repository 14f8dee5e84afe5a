"""jaxal: active learning for imbalanced image datasets in JAX.

Reimplements Aggarwal, Popescu and Hudelot, "Active Learning for Imbalanced
Datasets" (WACV 2020). Importing jaxal never imports TensorFlow or TFDS; only
`jaxal.datasets` does, lazily, inside its functions.

Docstrings cite the paper's sections and the method guide's, "method guide §N":
the numbered sections of the documentation site's "The method" page
(`docs/guides/method.md` in the source tree), which states each definition as
jaxal implements it and whether the paper states it, its numbers confirm it, or
jaxal reconstructed it.
"""

from jaxal import _xla_cpu

_xla_cpu.apply()  # before anything below can start a JAX backend

from jaxal import acquisition, balancing, metrics  # noqa: E402

__version__ = "0.1.0"
__all__ = ["acquisition", "balancing", "metrics"]
