"""Input errors name the field they concern, and the library's messages name
settings, never command-line flags: the command lines add those."""

import dataclasses

import numpy as np
import pytest

from jaxal import _validation as V
from jaxal.cli.label_files import LabelsError
from jaxal.cli.workdir import WorkdirError
from jaxal.errors import InputError
from jaxal.experiments import protocol, runner, sweep
from jaxal.models import simclr


def test_input_error_is_a_value_error_with_a_field():
  e = InputError("budget must be > 0, got 0.", field="budget")
  assert isinstance(e, ValueError) and e.field == "budget"
  assert InputError("x").field is None
  assert e.renamed("--budget") == "--budget must be > 0, got 0."
  assert InputError("budget=9 is too large.", field="budget").renamed(
      "--budget") == "--budget=9 is too large."
  assert InputError("ssl.temperature must be > 0.", field="ssl.temperature").renamed(
      "--ssl_temperature") == "--ssl_temperature must be > 0."
  # a message that does not open with the field's name gets it in front
  assert InputError("seed must lie in [0, 2**32).", field="seeds").renamed(
      "--seeds") == "--seeds: seed must lie in [0, 2**32)."
  assert InputError("--workdir is required.", field="workdir").renamed(
      "--workdir") == "--workdir is required."
  assert issubclass(WorkdirError, InputError) and issubclass(LabelsError, InputError)


@pytest.mark.parametrize("check,field", [
    (lambda: V.check_budget(0, 10), "budget"),
    (lambda: V.check_budget(11, 10), "budget"),
    (lambda: V.check_probs(np.ones((2, 2)), "probs"), "probs"),
    (lambda: V.check_features(np.full((2, 2), np.nan), "feats"), "feats"),
    (lambda: V.check_mask(np.ones(3, bool), 4), "labeled_mask"),
    (lambda: V.check_labels([0, 5], 3), "labels"),
    (lambda: V.check_seed(-1), "seed"),
    (lambda: V.check_num_classes(0), "num_classes"),
    (lambda: V.check_same_length(a=np.ones(2), b=np.ones(3)), None),
])
def test_the_boundary_checks_name_their_argument(check, field):
  with pytest.raises(InputError) as info:
    check()
  assert info.value.field == field


@pytest.mark.parametrize("change,field", [
    (dict(temperature=0), "temperature"), (dict(batch_size=1), "batch_size"),
    (dict(optimizer="adam"), "optimizer"), (dict(epochs=0), "epochs"),
    (dict(learning_rate=-1.0), "learning_rate"), (dict(seed=-1), "seed"),
])
def test_the_simclr_config_names_its_field(change, field):
  with pytest.raises(InputError) as info:
    simclr.SimCLRConfig(**change).validate()
  assert info.value.field == field and str(info.value).startswith(field)


def test_shards_name_their_field():
  with pytest.raises(InputError, match="shard") as info:
    sweep.parse_shard("2/2")
  assert info.value.field == "shard"


def _table_run(tmp_path, **change):
  run = runner.TableRun(
      tables=(2,), datasets=("offline_target",), budgets=(6,), methods=("random",),
      seeds=(0,), targets={"offline_target": ("svm",)},
      settings=protocol.Settings(), workdir=str(tmp_path / "w"))
  return dataclasses.replace(run, **change)


@pytest.mark.parametrize("change,field,words", [
    (dict(tables=(99,)), "tables", "99 is not a table"),
    (dict(tables=(15,), rounds=1), "rounds", "table 15 compares selection over rounds"),
    (dict(pixels="disk"), "pixels", "pixels must be one of"),
    (dict(datasets=("food101",)), "datasets", "unknown dataset 'food101' for "
     "data=offline"),
    (dict(methods=()), "methods", "methods is empty"),
    (dict(methods=("magic",)), "methods", "unknown method 'magic'"),
    (dict(seeds=(0, -1)), "seeds", "seed must lie in"),
    (dict(targets={"offline_target": ("knn",)}), "targets", "targets must be among"),
    (dict(budgets=(6, 10**6)), "budgets", "1000000 is larger than the"),
    (dict(settings=protocol.Settings(source=protocol.SourceSettings(
        batch_size=10**6))), "source.batch_size", "source.batch_size=1000000: M_S"),
    (dict(settings=protocol.Settings(source=protocol.SourceSettings(epochs=0))),
     "source.epochs", "source.epochs must be >= 1"),
    (dict(tables=(14,), settings=protocol.Settings(ssl=protocol.SSLSettings(
        temperature=0))), "ssl.temperature", "ssl.temperature must be > 0"),
    (dict(settings=protocol.Settings(data="real"), datasets=("cifar100",),
          targets={"cifar100": ("svm",)}), "data",
     "data=real needs data that is not here"),
])
def test_the_runner_names_settings_not_flags(tmp_path, change, field, words):
  with pytest.raises(runner.SetupError) as info:
    runner.check(_table_run(tmp_path, **change))
  e = info.value
  assert isinstance(e, InputError) and e.field == field, (e.field, str(e))
  assert words in str(e), str(e)
  # Other programs' flags (train_source's) aside, no flag is named; what to
  # download is the catalog's (its own command lines, tfds's).
  ours = str(e).split("\n- cifar100:")[0]
  assert " --" not in ours.replace("train_source --", ""), str(e)


def test_the_table_command_names_each_settings_flag():
  from experiments import tables  # pylint: disable=g-import-not-at-top
  assert tables.flag_of("tables") == "table"
  assert tables.flag_of("targets") == "target"
  assert tables.flag_of("budgets") == "budgets"
  assert tables.flag_of("source.batch_size") == "batch_size"
  assert tables.flag_of("ssl.temperature") == "ssl_temperature"
  assert tables.flag_of("offline.num_source_classes") == "offline_source_classes"
  assert tables.flag_of("ssl") is None and tables.flag_of("no_such") is None
  e = runner.SetupError("ssl.batch_size=9 exceeds the pool.", field="ssl.batch_size")
  assert tables.message(e) == "--ssl_batch_size=9 exceeds the pool."
