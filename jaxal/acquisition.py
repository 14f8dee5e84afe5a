"""Single-shot acquisition: one call returns the pool indices to label.

Implements method guide §3 (main paper section 3.2): random, the uncertainty
functions (entropy, least confidence, margin) with their inverse (`_inv`) and
diversified (`_div`, supplement Algorithm 1) variants, and core-set (greedy
k-center). All signals come from the source model before any target label exists;
for the paper's "+ens" variants pass snapshot-averaged probabilities and features.

Beyond the paper, the cold-start functions that followed it, on features alone
(`jaxal.coldstart`): "typiclust" (ICML 2022), "probcover" (NeurIPS 2022) and
"maxherding" (ECCV 2024), each with its authors' defaults. Their selection order
is their greedy order, so `select(..., budget=b)` is also the ranking that
`jaxal.balancing.balanced_select` walks.

And the methods that read the *target* classifier between rounds
(`jaxal.rounds`), given as a `TargetModel`: "uherding" (ICLR 2025; without a
target, its cold start: MaxHerding with the adaptive bandwidth), "dropquery"
(TMLR 2024; without a target, the centroid rule) and "direct" (ICML 2025; it
labels as it selects, so it also needs an oracle, and has no cold start).

    idx = select("entropy_inv_div", budget=1000, probs=probs)

Method names map to functions in one fixed table (`METHODS`); nothing registers
itself at import time.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import numpy as np
from jax.typing import ArrayLike

from jaxal import _sort
from jaxal import _validation as V
from jaxal import _xla_cpu
from jaxal import direct as direct_lib
from jaxal.balancing import Oracle
from jaxal.coldstart import dropquery, maxherding, probcover, typiclust, uherding
from jaxal.diversify import diversified_order, diversify, top1_classes  # noqa: F401 (API)
from jaxal.kcenter import kcenter_greedy
from jaxal.uncertainty import rank_by_uncertainty
from jaxal.errors import InputError

__all__ = ["METHODS", "TargetModel", "select", "rank", "diversify", "kcenter_greedy"]

_UNCERTAINTY = ("entropy", "least_confidence", "margin")
_SUFFIXES = ("", "_inv", "_div", "_inv_div")
COLD_START = ("typiclust", "probcover", "maxherding")
# Methods that read the target classifier (`TargetModel`) in later rounds.
TARGET_AWARE = ("uherding", "dropquery", "direct")
METHODS: tuple[str, ...] = ("random", "coreset") + tuple(
    base + suffix for base in _UNCERTAINTY for suffix in _SUFFIXES) + COLD_START \
    + TARGET_AWARE
# Methods that need no source-model probabilities (features only, and the
# target-aware ones, which read the target's and never M_S's).
FEATURES_ONLY = ("random", "coreset") + COLD_START + TARGET_AWARE
# Methods whose selection depends on the seed (k-means seeding for TypiClust,
# ProbCover's pseudo-labels and DropQuery; dropout masks; UHerding's bandwidth
# subset on large pools; DIRECT's draws); the others are deterministic given
# their inputs.
SEEDED = ("random", "coreset", "typiclust", "probcover", "uherding", "dropquery",
          "direct")
# Methods that label as they select (an oracle in the loop): the balancing step
# cannot re-walk their picks without discarding labels already paid for.
LABELS_WHILE_SELECTING = ("direct",)


class TargetModel(NamedTuple):
  """The target classifier's view of the pool, for the methods that read it
  between rounds (`TARGET_AWARE`): a linear head over `inputs`.

  `probs` = softmax(x @ weights + bias) for a linear head over x = `inputs`,
  or over `inputs` with rows scaled to unit L2 norm when `normalize` (the SVM's;
  kept unnormalised so that no second [N, d] copy lives beside the pool's). A
  target without a linear head (a fine-tuned network read from its outputs
  only) has `weights` None, and DropQuery refuses it.
  """
  probs: np.ndarray  # [N, K] its class probabilities
  classes: np.ndarray  # [K] the target class of each column
  inputs: Optional[np.ndarray] = None  # [N, d] what its linear head reads
  weights: Optional[np.ndarray] = None  # [d, K]
  bias: Optional[np.ndarray] = None  # [K]
  normalize: bool = False  # the head reads inputs / ||inputs|| (row-wise)

# Stage tag folded into the seed so that random selection and k-center's first
# center use independent streams of the same seed.
_RANDOM_STREAM = 1


@functools.lru_cache(maxsize=None)
def _permutation(platform: str):
  """jax.random.permutation's values without its stable-sort buffer, jitted for
  `platform` (one compilation per pool size; `_xla_cpu.loop_emitter_options`)."""
  return jax.jit(_sort.permutation, static_argnums=1,
                 compiler_options=_xla_cpu.loop_emitter_options(platform))


def _parse(method: str) -> tuple[str, bool, bool]:
  """Splits an uncertainty method name into (base, inverse, diversified)."""
  if not isinstance(method, str) or method not in METHODS:
    raise InputError(f"unknown method {method!r}; valid methods: "
                     f"{', '.join(METHODS)}.")
  base, div = (method[:-4], True) if method.endswith("_div") else (method, False)
  base, inv = (base[:-4], True) if base.endswith("_inv") else (base, False)
  return base, inv, div


def ranks_whole_pool(method: str) -> bool:
  """True for the uncertainty methods, whose `rank` orders the whole pool; the
  others (random, core-set, cold-start) give their order by `select`."""
  return _parse(method)[0] in _UNCERTAINTY


def ranking_to_balance(method: str, *, budget: int,
                       probs: Optional[ArrayLike] = None,
                       features: Optional[ArrayLike] = None, seed: int = 0,
                       num_classes: Optional[int] = None,
                       selected: Optional[ArrayLike] = None,
                       labeled_mask: Optional[ArrayLike] = None,
                       target: Optional[TargetModel] = None) -> np.ndarray:
  """The ranking the balancing step walks (method guide §4) for `method`.

  An uncertainty method ranks the whole pool (`rank`), so the step can go past
  the first `budget` samples when it skips some; every other method gives its
  `budget` picks in selection order (`select`), which is all the step reads
  before it switches to balancing.

  Args:
    method: one of `METHODS`.
    budget: the selection's budget.
    probs, features, seed, num_classes, labeled_mask, target: as for `select`
      (a later round's: the points labeled before it are never ranked).
    selected: optional picks of `method` already made with these arguments
      (e.g. read back from a work directory); returned as they are for the
      methods that do not rank the whole pool, instead of selecting again.

  Returns:
    numpy int64 array of pool indices, best first.
  """
  if method in LABELS_WHILE_SELECTING:
    raise InputError(f"method {method!r} labels as it selects; the balancing step "
                     "cannot walk its picks again without discarding labels already "
                     "paid for: run it without balancing.", field="method")
  if ranks_whole_pool(method):
    return rank(method, probs=probs, labeled_mask=labeled_mask)
  if selected is not None:
    return np.asarray(selected, np.int64)
  return select(method, budget=budget, probs=probs, features=features, seed=seed,
                num_classes=num_classes, labeled_mask=labeled_mask, target=target)


def needs_probs(method: str) -> bool:
  """True for the methods that need M_S's source-class probabilities (the
  uncertainty methods and their variants); False for those that work from
  features alone (random, core-set, the cold-start functions).

  Example:
    >>> from jaxal import acquisition
    >>> acquisition.needs_probs("entropy_inv_div"), acquisition.needs_probs("typiclust")
    (True, False)
  """
  return _parse(method)[0] in _UNCERTAINTY


def rank(method: str, *, probs: ArrayLike,
         labeled_mask: Optional[ArrayLike] = None) -> np.ndarray:
  """Full ranking of the unlabeled pool for an uncertainty method.

  This is what the balancing step (`jaxal.balancing.balanced_select`) walks.

  Args:
    method: an uncertainty method of `METHODS` (with `_inv` and/or `_div`).
    probs: [N, C] source-class probabilities.
    labeled_mask: optional [N] bool.

  Returns:
    numpy int64 array of every unlabeled pool index, best first.

  Example:
    >>> import numpy as np
    >>> from jaxal import acquisition
    >>> probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.99, 0.01]])
    >>> acquisition.rank("least_confidence", probs=probs)
    array([1, 2, 0, 3])
  """
  base, inv, div = _parse(method)
  if base not in _UNCERTAINTY:
    raise InputError(f"rank() needs an uncertainty method, got {method!r}; use "
                     "select() for random, coreset and the cold-start methods.")
  if probs is None:
    raise InputError(f"method {method!r} needs probs: pass the source model's "
                     "[N, C] softmax probabilities.")
  p = V.check_probs(probs)
  mask = V.check_mask(labeled_mask, p.shape[0])
  if mask.all():
    raise InputError("labeled_mask marks every sample as labeled; nothing is left "
                     "to rank.")
  return _rank(p, mask, base, inv, div)


def _check_target(method: str, target, oracle, n: int) -> None:
  """What the target-aware `method` needs of `target` and `oracle`."""
  if target is not None and not isinstance(target, TargetModel):
    raise InputError(f"target must be an acquisition.TargetModel, got "
                     f"{type(target).__name__}.", field="target")
  if method == "direct" and (target is None or oracle is None):
    raise InputError("method 'direct' labels around the target classifier's "
                     "thresholds as it selects: pass target (a TargetModel trained "
                     "on the labeled points) and oracle (the annotator); it has no "
                     "cold start (select the first round with 'random').",
                     field="target" if target is None else "oracle")
  if method != "direct" and oracle is not None:
    raise InputError(f"method {method!r} takes no oracle (only 'direct' labels as "
                     "it selects).", field="oracle")
  if target is None:
    return
  rows = V.check_probs(target.probs, "target.probs").shape[0]
  if rows != n:
    raise InputError(f"target.probs has {rows} rows for a pool of {n}.",
                     field="target")
  if method == "dropquery":
    if target.weights is None or target.inputs is None:
      raise InputError("method 'dropquery' needs the target's linear head (inputs, "
                       "weights, bias): an SVM or linear-probe target.",
                       field="target")
    if np.shape(target.inputs)[0] != n:
      raise InputError(f"target.inputs has {np.shape(target.inputs)[0]} rows for a "
                       f"pool of {n}.", field="target")


def _first_unlabeled(order: np.ndarray, mask: np.ndarray, budget: int,
                     block: int = 65_536) -> np.ndarray:
  """The first `budget` entries of `order` not labeled in `mask`, as int64,
  reading `order` by blocks (no [N] temporaries)."""
  out, need = [], budget
  for start in range(0, len(order), block):
    part = order[start:start + block]
    part = part[~mask[part]][:need]
    out.append(part.astype(np.int64))
    need -= len(part)
    if need == 0:
      break
  return np.concatenate(out) if out else np.zeros(0, np.int64)


def _rank(p: np.ndarray, mask: np.ndarray, base: str, inv: bool,
          div: bool, budget: Optional[int] = None) -> np.ndarray:
  """`rank` on validated inputs; its first `budget` entries only, when given
  (the int64 copy of a whole ranking is 8 bytes per point)."""
  # device_put aliases an aligned host array (a memory-mapped pool's included);
  # handing the NumPy array to the jitted function would copy it whole.
  order = np.asarray(rank_by_uncertainty(jax.device_put(p), mask, kind=base,
                                         inverse=inv))
  order = order[:int(p.shape[0] - mask.sum())]
  if div:
    order = order[np.asarray(diversified_order(top1_classes(p)[order]))[:budget]]
  return order[:budget].astype(np.int64)


def select(method: str, *, budget: int, probs: Optional[ArrayLike] = None,
           features: Optional[ArrayLike] = None,
           labeled_mask: Optional[ArrayLike] = None, seed: int = 0,
           num_classes: Optional[int] = None,
           target: Optional[TargetModel] = None,
           oracle: Optional[Oracle] = None) -> np.ndarray:
  """Selects `budget` unlabeled pool samples with an acquisition function.

  Args:
    method: one of `METHODS`: "random", "coreset", or an uncertainty base
      ("entropy", "least_confidence", "margin") with optional suffix "_inv"
      (most confident first) and/or "_div" (Algorithm 1 on the top-1 predicted
      source class), in that order, e.g. "entropy_inv_div"; or a cold-start
      method "typiclust", "probcover", "maxherding" (`jaxal.coldstart`, with
      their authors' defaults; call those modules for their other arguments);
      or one reading the target model in later rounds (`TARGET_AWARE`):
      "uherding", "dropquery", "direct".
    budget: number of samples to select, 0 < budget <= unlabeled pool size.
    probs: [N, C] source-class probabilities; needed by uncertainty methods.
    features: [N, d] source embeddings; needed by "coreset" and the cold-start
      methods.
    labeled_mask: optional [N] bool; labeled samples are never selected (and
      count as covering for core-set and the cold-start methods).
    seed: seed of "random", of core-set's first center and of the k-means of
      TypiClust and ProbCover.
    num_classes: number of target classes; ProbCover's k-means pseudo-labels
      (its choice of delta) and DIRECT need it.
    target: the target classifier trained on the labeled points, for
      "uherding" (its uncertainty weights), "dropquery" (its linear head) and
      "direct" (its one-vs-rest scores); None for their cold starts.
    oracle: "direct" only: the annotator (an [N] label array or a callable
      `indices -> labels`), asked during the selection.

  Returns:
    numpy int64 array of `budget` unique unlabeled pool indices, in selection
    order.

  Example:
    >>> import numpy as np
    >>> from jaxal import acquisition
    >>> probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.99, 0.01]])
    >>> acquisition.select("entropy", budget=2, probs=probs)  # most uncertain first
    array([1, 2])
    >>> acquisition.select("entropy_inv", budget=2, probs=probs)  # most confident
    array([3, 0])
    >>> feats = np.array([[0., 0.], [1., 0.], [0., 1.], [5., 5.]])
    >>> acquisition.select("coreset", budget=2, features=feats)
    array([1, 3])
  """
  base, inv, div = _parse(method)
  n = V.check_same_length(probs=probs, features=features, labeled_mask=labeled_mask,
                          **({} if not isinstance(target, TargetModel) else
                             {"target.probs": target.probs}))
  _check_inputs(method, n, probs=probs, features=features,
                labeled_mask=labeled_mask, num_classes=num_classes, target=target,
                oracle=oracle)
  mask = V.check_mask(labeled_mask, n)
  budget = V.check_budget(budget, int(n - mask.sum()))
  seed = V.check_seed(seed)

  if base not in _UNCERTAINTY:
    return _select_by(base, budget, features=features, mask=mask, seed=seed,
                      num_classes=num_classes, target=target, oracle=oracle, n=n)
  return _rank(np.asarray(probs), mask, base, inv, div, budget)


def _check_inputs(method: str, n: int, *, probs, features, labeled_mask,
                  num_classes, target, oracle) -> None:
  """`select`'s refusals: what `method` reads is given and valid."""
  base = _parse(method)[0]
  if base in _UNCERTAINTY and probs is None:
    raise InputError(f"method {method!r} needs probs: pass the source model's "
                     "[N, C] softmax probabilities.")
  if base in ("coreset", "uherding") + COLD_START and features is None \
      or base == "dropquery" and features is None and target is None:
    raise InputError(f"method {base!r} needs features: pass the source model's "
                     "[N, d] embeddings.")
  if base == "probcover" and num_classes is None:
    raise InputError("method 'probcover' needs num_classes (the number of target "
                     "classes) to choose its ball radius by purity.")
  if base == "random" and probs is None and features is None and labeled_mask is None:
    raise InputError("method 'random' needs the pool size: pass labeled_mask "
                     "(all False for an unlabeled pool), probs or features.")
  # Only what the method reads is checked (reading is the check's cost: a
  # memory-mapped pool's features stay on disk for the uncertainty methods).
  if probs is not None and base in _UNCERTAINTY:
    V.check_probs(probs)
  if features is not None and base in ("coreset", "uherding") + COLD_START:
    V.check_features(features)
  if base in TARGET_AWARE:
    _check_target(base, target, oracle, n)


def _select_by(base: str, budget: int, *, features, mask: np.ndarray, seed: int,
               num_classes, target, oracle, n: int) -> np.ndarray:
  """`select` for the methods that do not rank by uncertainty: random, core-set,
  the cold-start methods and those reading a target model."""
  if base == "random":
    key = jax.random.fold_in(jax.random.PRNGKey(seed), _RANDOM_STREAM)
    order = _permutation(jax.default_backend())(key, n)
    return _first_unlabeled(np.asarray(order), mask, budget)
  if base == "coreset":
    return kcenter_greedy(features, budget, labeled_mask=mask, seed=seed)
  if base == "typiclust":
    return typiclust.typiclust(features, budget, labeled_mask=mask, seed=seed)
  if base == "probcover":
    return probcover.probcover(features, budget, labeled_mask=mask, seed=seed,
                               num_classes=num_classes)
  if base == "maxherding":
    return maxherding.maxherding(features, budget, labeled_mask=mask)
  if base == "uherding":
    return uherding.uherding(features, budget, labeled_mask=mask, seed=seed,
                             probabilities=None if target is None else target.probs)
  if base == "dropquery":
    if target is None:
      return dropquery.dropquery(features, budget, labeled_mask=mask, seed=seed)
    x = np.asarray(target.inputs, np.float32)
    if target.normalize:  # as `models.target.l2_normalize`, one copy for the round
      x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return dropquery.dropquery(x, budget, labeled_mask=mask, seed=seed,
                               weights=target.weights, bias=target.bias)
  assert base == "direct", base
  return direct_lib.direct(target.probs, budget, oracle, labeled_mask=mask,
                           num_classes=num_classes, classes=target.classes,
                           seed=seed)
