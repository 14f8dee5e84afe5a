"""Target models M_T trained on the labeled subset (method guide §5).

- `svm_predict`: a linear one-vs-rest SVM (scikit-learn) on L2-normalised
  source features f ([R]: linear, OvR, C configurable).
- `finetune`: M_S with a new classification head over the target classes,
  trained on the same machinery as M_S (`jaxal.models.train.fit`).
- `svm_signals`: the SVM's view of the pool (features, softmax of its decision
  scores) that later selection rounds rank by (`jaxal.rounds`); `svm_target`
  the same with its linear head, as the target-aware methods read it
  (`jaxal.acquisition.TargetModel`).
- `round_signals`: which signals a later round ranks by: the target model's,
  or the source model's while fewer than two classes are labeled (`jaxal
  select --rounds` and the experiments' cells both decide here).

The first two give test-set predictions for `jaxal.metrics.accuracy_all_classes`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import numpy as np
from sklearn.svm import LinearSVC

from jaxal import _validation as V
from jaxal import io
from jaxal.acquisition import TargetModel
from jaxal.models import inference, train


def l2_normalize(x: np.ndarray) -> np.ndarray:
  """Rows of `x` scaled to unit L2 norm (float32; an all-zero row stays zero)."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclasses.dataclass(frozen=True)
class LinearSVM:
  """A trained linear OvR SVM as plain arrays (saved as .npz, never pickled).

  `decision` and `predict` compute what scikit-learn's `LinearSVC` does
  (decision = normalised f @ coef.T + intercept; binary: one column, positive =
  classes[1]); a single class gives a constant predictor.
  """
  classes: np.ndarray  # [K] the labels it was trained on, sorted
  coef: np.ndarray  # [K or 1, D]
  intercept: np.ndarray  # [K or 1]

  def decision(self, features) -> np.ndarray:
    """[N, K] one score per class (the binary case is made two-column, +-s)."""
    f = l2_normalize(V.check_features(features, "features"))
    if self.classes.size == 1:
      return np.zeros((f.shape[0], 1))
    s = f @ self.coef.T + self.intercept
    return np.concatenate([-s, s], axis=1) if self.classes.size == 2 else s

  def head(self) -> tuple[np.ndarray, np.ndarray]:
    """(W [D, K], b [K]) float32 with decision(f) = l2_normalize(f) @ W + b, in
    `decision`'s columns (the binary case two columns, -+)."""
    w, b = self.coef.T, self.intercept
    if self.classes.size == 2:
      w, b = np.concatenate([-w, w], axis=1), np.concatenate([-b, b])
    elif self.classes.size == 1:
      w, b = np.zeros((self.coef.shape[1], 1)), np.zeros((1,))
    return w.astype(np.float32), b.astype(np.float32)

  def predict(self, features) -> np.ndarray:
    """The class of each row of `features` (argmax of `decision`)."""
    return self.classes[np.argmax(self.decision(features), axis=1)]

  def save(self, path: str) -> None:
    """Saves the SVM as arrays in an .npz file (no pickle), atomically."""
    io.save_npz(path, classes=self.classes, coef=self.coef, intercept=self.intercept)

  @classmethod
  def load(cls, path: str) -> "LinearSVM":
    """The SVM `save` wrote."""
    with np.load(path) as z:
      return cls(z["classes"], z["coef"], z["intercept"])


def fit_svm(train_features, train_labels, *, C: float = 1.0,
            max_iter: int = 5000) -> LinearSVM:
  """A linear OvR SVM on L2-normalised f (method guide §5, [R])."""
  f = V.check_features(train_features, "train_features")
  y = np.asarray(train_labels)
  V.check_same_length(train_features=f, train_labels=y)
  classes = np.unique(y)
  if classes.size == 1:  # one class found: the SVM is a constant predictor
    return LinearSVM(classes, np.zeros((1, f.shape[1])), np.zeros((1,)))
  # liblinear's dual solver shuffles the samples; with random_state=None it draws
  # from NumPy's global RNG and the same inputs gave 72.8 or 72.9 ACC_t.
  svm = LinearSVC(C=C, max_iter=max_iter, dual="auto", random_state=0)
  svm.fit(l2_normalize(f), y)
  return LinearSVM(svm.classes_, svm.coef_, svm.intercept_)  # float64, as sklearn


def svm_predict(train_features, train_labels, test_features, *, C: float = 1.0,
                max_iter: int = 5000) -> np.ndarray:
  """Predicted labels of `test_features` by a linear OvR SVM on L2-normed f."""
  f = V.check_features(train_features, "train_features")
  g = V.check_features(test_features, "test_features")
  if f.shape[1] != g.shape[1]:
    raise ValueError(f"train_features has {f.shape[1]} dimensions but "
                     f"test_features has {g.shape[1]}; use the same extractor.")
  return fit_svm(f, train_labels, C=C, max_iter=max_iter).predict(g)


def finetune(model: nn.Module, variables, num_classes: int, images: np.ndarray,
             labels: np.ndarray, config: train.TrainConfig, *,
             workdir: Optional[str] = None, log=None,
             transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """Fine-tunes M_S with a new head over `num_classes` target classes.

  Every layer is trained, starting from the source weights (supplement section
  6). Batches are reshuffled every epoch from `config.seed`; when the labeled set
  is smaller than `config.batch_size`, the largest batch that the devices divide
  is used. `transform` (e.g. `pipeline.normalize` for uint8 images) is applied
  to each batch, so the images are never converted all at once. Returns (target
  model, its variables).
  """
  images = np.asarray(images)
  prepare = transform or (lambda x: np.asarray(x, np.float32))
  labels = V.check_labels(labels, num_classes, name="labels", length=len(images))
  n_dev = jax.device_count()
  batch = min(config.batch_size, len(images) // n_dev * n_dev)
  if batch == 0:
    raise ValueError(f"{len(images)} labeled images cannot fill one batch over "
                     f"{n_dev} devices.")
  config = dataclasses.replace(config, batch_size=batch)
  steps = len(images) // batch
  target = model.clone(num_classes=num_classes)
  fresh = train.create_state(target, config, images.shape[1:])
  params = dict(variables["params"])
  params["head"] = fresh.params["head"]  # new head, source body
  state = fresh.replace(params=params, batch_stats=variables["batch_stats"])

  def batches(epoch):
    order = np.random.default_rng([config.seed, epoch]).permutation(len(images))
    for i in range(steps):
      idx = order[i * batch:(i + 1) * batch]
      yield prepare(images[idx]), labels[idx]

  state = train.fit(target, config, batches, steps_per_epoch=steps,
                    image_shape=images.shape[1:], workdir=workdir, init=state,
                    log=log)
  return target, train.variables_of(state)


def finetune_predict(model: nn.Module, variables, images, *, batch_size=256,
                     transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
  """Predicted labels of a fine-tuned target model (`transform` per batch)."""
  _, probs = inference.predict(model, variables, images, batch_size=batch_size,
                               transform=transform)
  return np.argmax(probs, axis=1)


def softmax(scores: np.ndarray) -> np.ndarray:
  """Row-wise softmax of `scores`, computed in float64 and returned as float32."""
  s = np.asarray(scores, np.float64)
  s = np.exp(s - s.max(axis=1, keepdims=True))
  return (s / s.sum(axis=1, keepdims=True)).astype(np.float32)


def svm_signals(features: np.ndarray, labeled: np.ndarray, labels: np.ndarray, *,
                C: float = 1.0) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """(features, probs) of the pool as seen by an SVM trained on the labeled
  part; None when fewer than two classes are labeled (use the source's)."""
  labeled = np.asarray(labeled, np.int64)
  if np.unique(labels).size < 2:
    return None
  svm = fit_svm(features[labeled], labels, C=C)
  return features, softmax(svm.decision(features))


def svm_target(features: np.ndarray, labeled: np.ndarray, labels: np.ndarray, *,
               C: float = 1.0) -> Optional[TargetModel]:
  """The SVM trained on the labeled part as a `TargetModel` (its linear head
  over the L2-normalised `features`, which it keeps as they are, softmax of its
  scores as probabilities, a column per class labeled so far); None when fewer
  than two are labeled."""
  labeled = np.asarray(labeled, np.int64)
  if np.unique(labels).size < 2:
    return None
  svm = fit_svm(features[labeled], labels, C=C)
  w, b = svm.head()
  return TargetModel(softmax(svm.decision(features)), svm.classes.astype(np.int64),
                     features, w, b, normalize=True)


class RoundSignals(NamedTuple):
  """The pool's signals for the next selection round, and their model."""
  features: np.ndarray
  probs: Optional[np.ndarray]
  model: str  # "source", "svm" or "finetune"
  target: Optional[TargetModel] = None  # the target-aware methods' view


def round_signals(labeled: np.ndarray, labels: np.ndarray, *,
                  source: tuple[np.ndarray, Optional[np.ndarray]],
                  svm_features: Optional[Callable[[], np.ndarray]] = None,
                  svm_c: float = 1.0,
                  finetune: Optional[Callable[[np.ndarray, np.ndarray],
                                              tuple[np.ndarray, np.ndarray]]] = None
                  ) -> RoundSignals:
  """(features, probs) of the pool that a later selection round ranks by
  (`jaxal.rounds`): the target model's, trained on the labels so far.

  While fewer than two classes are labeled the target model would be a
  constant and say nothing, so the round ranks by the source model's signals.

  Args:
    labeled: the pool indices with a label.
    labels: their labels (target classes).
    source: M_S's (features, probs) of the pool.
    svm_features: the SVM target's features of the pool, as a callable read
      only when the SVM is trained (`svm_signals`); the target when `finetune`
      is None.
    svm_c: the SVM's C.
    finetune: the fine-tuned target instead: (labeled, labels) -> the pool's
      (features, probs) by M_S fine-tuned on them.
  """
  labeled = np.asarray(labeled, np.int64)
  labels = np.asarray(labels)
  if np.unique(labels).size < 2:
    return RoundSignals(*source, "source")
  if finetune is not None:
    feats, probs = finetune(labeled, labels)
    # A network read from its outputs: no linear head (DropQuery needs one).
    return RoundSignals(feats, probs, "finetune",
                        TargetModel(probs, np.arange(probs.shape[1])))
  feats = svm_features()
  got = svm_target(feats, labeled, labels, C=svm_c)
  return RoundSignals(feats, got.probs, "svm", got)
