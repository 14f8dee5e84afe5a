"""Table 16's parts: the offline stand-in's zero-shot probabilities, the cells
(zero-shot rows only for the methods that read probabilities, guided rows only
balanced), a guided cell's selection equal to the balancing step led by the
guesses, the table's rows and CSV, and its settings checked by name."""

import dataclasses

import numpy as np
import pytest

from jaxal import acquisition, balancing
from jaxal.experiments import _selection as selection
from jaxal.experiments import _zeroshot, protocol, render, runner, sweep
from jaxal.models.target import RoundSignals

SIZES = (300, 150, 60, 20, 8, 4)  # an imbalanced pool, the last classes rare


def features(seed, sizes, spread=3.0):
  """[N, 16] features of Gaussian classes with labels, `sizes` per class."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(len(sizes), 16)) * spread
  y = np.repeat(np.arange(len(sizes)), sizes)
  return (centers[y] + rng.normal(size=(len(y), 16))).astype(np.float32), y, centers


def stand_in_pool(seed, noise=1.0):
  """(pool features, labels, the stand-in's probabilities): the test split
  drawn from the same classes, 20 images each."""
  rng = np.random.default_rng(seed)
  x, y, centers = features(seed, SIZES)
  yt = np.repeat(np.arange(len(SIZES)), 20)
  xt = (centers[yt] + rng.normal(size=(len(yt), 16))).astype(np.float32)
  return x, y, _zeroshot.stand_in(x, xt, yt, len(SIZES), noise=noise, seed=seed)


def test_the_stand_in_guesses_each_class_first_for_its_own_images():
  x, y, p = stand_in_pool(0)
  assert p.shape == (len(y), len(SIZES)) and p.dtype == np.float32
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
  for c in range(len(SIZES)):  # class c's images rank first by p(c | x)
    top = np.argsort(-p[:, c], kind="stable")[:SIZES[c]]
    assert np.mean(y[top] == c) > 0.8, c
  # noise makes the guesses worse; the same seed gives the same ones
  right = [_zeroshot.top1(stand_in_pool(0, noise)[2], y) for noise in (0.0, 6.0)]
  assert right[0] > right[1]
  np.testing.assert_array_equal(stand_in_pool(0)[2], p)


def test_the_stand_in_needs_test_images_of_every_class():
  x, y, _ = features(0, SIZES)
  with pytest.raises(protocol.SettingsError) as e:
    _zeroshot.stand_in(x, x[y < 5], y[y < 5], len(SIZES), noise=1.0, seed=0)
  assert e.value.field == "zeroshot.source" and "[5]" in str(e.value)


def table_16_cells(**kw):
  spec = render.SPECS[16]
  return sweep.expand(datasets=("offline_target",), pool=spec.pool, budgets=(40,),
                      methods=("random", "entropy_inv_div", "coreset"),
                      balancing=spec.balancing, ensemble=spec.ensemble,
                      targets={"offline_target": ("svm",)}, seeds=(0, 1),
                      features=spec.features, guided=spec.guided, **kw)


def test_cells_zero_shot_only_where_probabilities_are_read_guided_only_balanced():
  cells = [c for c in table_16_cells() if c.method != sweep.FULL]
  assert {c.method for c in cells if c.features == "zeroshot"} == {"entropy_inv_div"}
  assert all(c.balancing for c in cells if c.guided)
  # every method has its three balancing variants; entropy_inv_div twice (M_S, ZS)
  count = lambda m: len([c for c in cells if c.method == m and c.seed == 0])  # noqa: E731
  assert (count("random"), count("coreset"), count("entropy_inv_div")) == (3, 3, 6)
  keys = [c.key for c in cells]
  assert len(keys) == len(set(keys))
  guided = [c for c in cells if c.guided and c.features == "zeroshot"][0]
  assert guided.key.endswith("__fzeroshot__guided")
  # the paper's cells keep their names: Tables 2-5 and 16 share them
  assert dataclasses.replace(guided, guided=False, features="source").key == (
      "offline_target__imbalanced__svm__b40__entropy_inv_div__bal1__ens0__s0")


@pytest.mark.parametrize("method,rounds", [("entropy", 1), ("coreset", 1),
                                           ("margin", 2)])
def test_a_guided_cell_is_the_balancing_step_led_by_the_guesses(method, rounds):
  x, y, p = stand_in_pool(1)
  cell = sweep.Cell("offline_target", "imbalanced", "svm", 30, method, True, False, 0,
                    rounds, "source", True)
  later = lambda idx: RoundSignals(x, p, "source")  # noqa: E731
  kw = dict(rule="ratio", majority_distance="nearest", later=later)
  got = selection.select(cell, x, p, y, len(SIZES), guesses=p, guess_weight=0.5, **kw)
  paper = selection.select(dataclasses.replace(cell, guided=False), x, p, y,
                           len(SIZES), **kw)
  assert len(set(got.tolist())) == 30
  assert not np.array_equal(got, paper)  # the guesses changed the picks
  if rounds == 1:
    ranking = acquisition.ranking_to_balance(method, budget=30, probs=p, features=x,
                                             seed=0, num_classes=len(SIZES))
    want = balancing.balanced_select(ranking, x, y, 30, len(SIZES), guesses=p,
                                     guess_weight=0.5)
    np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match="guided cell"):
    selection.select(cell, x, p, y, len(SIZES), **kw)  # no guesses given


def test_the_table_has_zero_shot_and_guided_rows():
  rows = []
  for c in table_16_cells():
    rows.append({**c.as_dict(), "acc_t": 50.0 if c.method == sweep.FULL else
                 10.0 + c.guided + 2 * (c.features == "zeroshot") + c.seed,
                 "classes_found": 3, "imbalance_ratio": 0.5})
  table = render.build(16, rows, datasets=["offline_target"], budgets=[40],
                       methods=["random", "entropy_inv_div", "coreset"],
                       targets={"offline_target": ("svm",)})
  md = table.markdown()
  for label in ("random", "random +bal", "random +guess", "entropy_inv_div [ZS]",
                "entropy_inv_div [ZS] +bal", "entropy_inv_div [ZS] +guess",
                "coreset +guess"):
    assert f"| {label} | acc_t |" in md, label
  assert "random [ZS]" not in md and "coreset [ZS]" not in md
  assert "| entropy_inv_div [ZS] +guess | acc_t | **13.00** |" in md
  assert "| random +guess | acc_t | 11.50 ± 0.50 |" in md
  lines = table.csv().splitlines()
  assert lines[0].endswith(",balancing,features,guided")
  assert any(ln.startswith("16,entropy_inv_div,0,acc_t,offline_target 40,")
             and ln.endswith(",1,zeroshot,1") for ln in lines)


def run_16(settings, tables=(16,)):
  return runner.TableRun(tables=tables, datasets=("offline_target",), budgets=(40,),
                         methods=("random",), seeds=(0,),
                         targets={"offline_target": ("svm",)}, settings=settings,
                         workdir="/nonexistent")


@pytest.mark.parametrize("zeroshot,field", [
    (protocol.ZeroShotSettings(noise=-1.0), "zeroshot.noise"),
    (protocol.ZeroShotSettings(guess_weight=float("nan")), "zeroshot.guess_weight"),
    (protocol.ZeroShotSettings(prompts=("a photo of a thing.",)), "zeroshot.prompts"),
    (protocol.ZeroShotSettings(source="/nonexistent/siglip"), "zeroshot.source"),
])
def test_the_settings_are_checked_by_name(zeroshot, field):
  with pytest.raises(runner.SetupError) as e:
    runner.check(run_16(protocol.Settings(zeroshot=zeroshot)))
  assert e.value.field == field, str(e.value)
  runner.check(run_16(protocol.Settings(zeroshot=zeroshot), tables=(2,)))  # unused


def test_real_data_needs_a_siglip_source(monkeypatch):
  monkeypatch.setattr(runner, "_check_real", lambda run: None)
  monkeypatch.setattr(runner, "_check_pools", lambda run: None)
  run = dataclasses.replace(run_16(protocol.Settings(data="real")),
                            datasets=("cifar100",), targets={"cifar100": ("svm",)})
  with pytest.raises(runner.SetupError) as e:
    runner.check(run)
  assert e.value.field == "zeroshot.source" and "import-source --arch=siglip" in str(
      e.value)


def test_settings_without_zero_shot_keep_their_record():
  assert "zeroshot" not in protocol.Settings().as_dict()
  d = protocol.Settings(zeroshot=protocol.ZeroShotSettings(noise=2.0)).as_dict()
  assert d["zeroshot"]["noise"] == 2.0


def test_tables_2_to_15_and_16_share_a_workdir_whatever_their_zero_shot_flags(tmp_path):
  """settings.json: the zero-shot settings are recorded by the first run that
  uses them and kept by the others; only a second Table 16 run with other
  zero-shot settings is refused."""
  from jaxal import io  # pylint: disable=g-import-not-at-top
  wd = str(tmp_path / "w")
  path = tmp_path / "w" / "settings.json"

  def check(tables, zs=protocol.ZeroShotSettings()):
    run = dataclasses.replace(run_16(protocol.Settings(zeroshot=zs), tables),
                              workdir=wd)
    runner.check(run)
    io.write_json(str(path), runner.recorded(run, io.read_json(str(path))))

  check((2,))
  assert "zeroshot" not in io.read_json(str(path))  # as before Table 16 existed
  other = protocol.ZeroShotSettings(noise=2.0, prompts=("a {}",))
  check((16,), other)  # the first use is recorded
  assert io.read_json(str(path))["zeroshot"]["noise"] == 2.0
  check((3,))  # a table without guesses keeps the record, whatever its flags
  assert io.read_json(str(path))["zeroshot"]["prompts"] == ["a {}"]
  check((16,), other)
  with pytest.raises(runner.SetupError) as e:
    check((16,))  # the default noise: not the one the cells were made with
  assert e.value.field == "workdir" and "zeroshot" in str(e.value)
