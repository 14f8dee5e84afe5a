"""The experiments' near-duplicate option (`Settings.dedupe`): a cell selects at
most one image of a group, single-shot, balanced and over rounds; the setting
is checked, and work directories written without it keep their settings."""

import numpy as np
import pytest

from jaxal.curation import duplicates, neighbors
from jaxal.experiments import _selection as selection
from jaxal.experiments import protocol, runner, sweep
from jaxal.models.target import RoundSignals


def copied_pool(seed):
  """40 scenes of 4 classes, each copied 6 times (near copies), plus 40 images."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(4, 12)) * 5
  scene_y = rng.integers(0, 4, 40)
  scenes = centers[scene_y] + rng.normal(size=(40, 12))
  copies = np.repeat(scenes, 6, axis=0) + rng.normal(size=(240, 12)) * 1e-4
  y_rest = rng.integers(0, 4, 40)
  rest = centers[y_rest] + rng.normal(size=(40, 12))
  x = np.concatenate([copies, rest]).astype(np.float32)
  y = np.concatenate([np.repeat(scene_y, 6), y_rest])
  probs = np.full((len(y), 3), 1 / 3, np.float32) + rng.uniform(0, .1, (len(y), 3))
  return x, y, probs / probs.sum(1, keepdims=True)


@pytest.mark.parametrize("method,bal,rounds", [("random", False, 1),
                                               ("margin", True, 1),
                                               ("coreset", False, 2),
                                               ("entropy", True, 2)])
def test_a_cell_selects_one_image_of_a_group(method, bal, rounds):
  x, y, p = copied_pool(0)
  dup = duplicates.group(x, neighbors.search(x, threshold=1e-6, metric="cosine", k=0))
  assert dup.removed == 200
  cell = sweep.Cell("offline_target", "imbalanced", "svm", 30, method, bal, False, 0,
                    rounds)
  later = lambda idx: RoundSignals(x, p, "source")  # noqa: E731
  picks = selection.select(cell, x, p, y, 4, rule="ratio", majority_distance="nearest",
                           later=later, dup=dup)
  assert len(picks) == 30 and len(set(dup.representative[picks])) == 30
  plain = selection.select(cell, x, p, y, 4, rule="ratio", majority_distance="nearest",
                           later=later)
  if method != "coreset":  # core-set never takes a copy of a center anyway
    assert len(set(dup.representative[plain])) < 30  # without it, copies twice


def test_the_setting_is_checked_and_absent_by_default():
  assert "dedupe" not in protocol.Settings().as_dict()
  assert protocol.Settings(dedupe=0.01).as_dict()["dedupe"] == 0.01
  for bad in (0.0, -1.0, float("nan"), 3.0):
    run = runner.TableRun(tables=(2,), datasets=("offline_target",), budgets=(40,),
                          methods=("random",), seeds=(0,),
                          targets={"offline_target": ("svm",)},
                          settings=protocol.Settings(dedupe=bad), workdir="/nonexistent")
    with pytest.raises(runner.SetupError) as e:
      runner.check(run)
    assert e.value.field == "dedupe" and "dedupe" in str(e.value)


def test_the_protocol_groups_each_pool_once_on_m_s_features(tmp_path):
  """`Protocol.duplicates`: the groups of M_S's pool features at the setting's
  cosine distance, computed once a pool; None without the setting."""
  x, _, p = copied_pool(1)
  calls = []

  def outputs(dataset, kind, split, ensemble):
    calls.append((dataset, kind, split, ensemble))
    return x, p

  proto = protocol.Protocol(protocol.Settings(dedupe=1e-6), str(tmp_path),
                            log=lambda m: None)
  proto.outputs = outputs
  dup = proto.duplicates("offline_target", "imbalanced")
  want = duplicates.group(x, neighbors.search(x, threshold=1e-6, metric="cosine",
                                              k=0))
  np.testing.assert_array_equal(dup.representative, want.representative)
  assert dup.removed == 200
  assert proto.duplicates("offline_target", "imbalanced") is dup
  assert calls == [("offline_target", "imbalanced", "train", False)]
  plain = protocol.Protocol(protocol.Settings(), str(tmp_path), log=lambda m: None)
  assert plain.duplicates("offline_target", "imbalanced") is None
