"""Target models M_T trained on the labeled subset (METHOD.md section 5).

- `svm_predict`: a linear one-vs-rest SVM (scikit-learn) on L2-normalised
  source features f ([R]: linear, OvR, C configurable).
- `finetune`: M_S with a new classification head over the target classes,
  trained on the same machinery as M_S (`jaxal.train.fit`).
Both give test-set predictions for `jaxal.metrics.accuracy_all_classes`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import flax.linen as nn
import jax
import numpy as np
from sklearn.svm import LinearSVC

from jaxal import _validation as V
from jaxal import inference, train


def l2_normalize(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def svm_predict(train_features, train_labels, test_features, *, C: float = 1.0,
                max_iter: int = 5000) -> np.ndarray:
  """Predicted labels of `test_features` by a linear OvR SVM on L2-normed f."""
  f = V.check_features(train_features, "train_features")
  g = V.check_features(test_features, "test_features")
  if f.shape[1] != g.shape[1]:
    raise ValueError(f"train_features has {f.shape[1]} dimensions but "
                     f"test_features has {g.shape[1]}; use the same extractor.")
  y = np.asarray(train_labels)
  V.check_same_length(train_features=f, train_labels=y)
  classes = np.unique(y)
  if classes.size == 1:  # one class found: the SVM is a constant predictor
    return np.full((g.shape[0],), classes[0], dtype=y.dtype)
  # liblinear's dual solver shuffles the samples; with random_state=None it draws
  # from NumPy's global RNG and the same inputs gave 72.8 or 72.9 ACC_t.
  svm = LinearSVC(C=C, max_iter=max_iter, dual="auto", random_state=0)
  return svm.fit(l2_normalize(f), y).predict(l2_normalize(g))


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
  fresh = train.create_state(target, config, images.shape[1:], steps)
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
