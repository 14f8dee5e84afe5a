"""The `jaxal` command's own contracts, without a model: each flag defined once,
`jaxal --help` as a user's overview, and the exit status: 2 with one line for
input jaxal cannot use (naming the flag), a traceback for anything else."""

import contextlib
import dataclasses
import io
import os
import subprocess
import sys

import pytest

from jaxal.cli import command
from jaxal.errors import InputError

from tests.conftest import subprocess_env


def jaxal(*args):
  """`jaxal ARGS` in this process: (exit status, stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = command.main(["jaxal", *args])
  return code, out.getvalue(), err.getvalue()


def replace_run(monkeypatch, name, run):
  monkeypatch.setitem(command.COMMANDS, name,
                      dataclasses.replace(command.COMMANDS[name], run=run))


def test_each_flag_has_one_definition_in_every_command():
  seen = {}
  for name in command.COMMANDS:
    for flag in command.flag_values(name)._flags().values():  # pylint: disable=protected-access
      values = getattr(flag.parser, "enum_values", None)
      text = flag.help[len(f"<{'|'.join(values)}>: "):] if values else flag.help
      seen.setdefault(flag.name, set()).add((text, flag.flag_type()))
  assert set(seen) == set(command.FLAG_SPECS), set(seen) ^ set(command.FLAG_SPECS)
  several = {n: v for n, v in seen.items() if len(v) > 1}
  assert not several, several
  assert all(text == command.FLAG_SPECS[n].help
             for n, v in seen.items() for text, _ in v)
  for name, cmd in command.COMMANDS.items():
    assert set(cmd.defaults) | set(cmd.choices) <= set(cmd.flags), name
  # the defaults that differ by command
  assert command.flag_values("pretrain")["epochs"].default == 200
  assert command.flag_values("train")["epochs"].default == 30
  assert command.flag_values("embed")["batch"].default == 128
  assert command.flag_values("balance")["batch"].default is None
  assert command.flag_values("pretrain")["arch"].parser.enum_values == [
      "resnet18", "resnet50"]


def test_help_is_an_overview_in_the_order_of_the_work():
  code, out, _ = jaxal("--help")
  assert code == 0
  lines = out.splitlines()
  order = [next(i for i, ln in enumerate(lines) if ln.startswith(f"  {c} "))
           for c in ("import-source", "pretrain", "embed", "dedupe", "select", "label",
                     "balance", "train", "predict", "report")]
  assert order == sorted(order)
  assert "README.md" in out and "docs/guides/command.md" in out
  assert "import" not in out.replace("import-source", "")  # no word on modules
  assert max(map(len, lines)) <= 80
  assert jaxal()[0] == 2  # no command: the same text, exit status 2


@pytest.mark.parametrize("name", sorted(command.COMMANDS))
def test_each_command_has_its_help(name):
  code, out, err = jaxal(name, "--help")
  assert code == 0 and not err
  assert out.startswith(f"jaxal {name}: {command.COMMANDS[name].doc}")
  assert "--workdir" in out and "--selection" in out


def test_a_bad_flag_exits_2_naming_the_flag(tmp_path):
  """A SimCLR config error (field `temperature`) is reported as the flag."""
  workdir = tmp_path / "ssl"
  code, _, err = jaxal("pretrain", f"--workdir={workdir}", f"--images={tmp_path}",
                       "--temperature=0")
  assert code == 2
  assert err == "error: jaxal pretrain: --temperature must be > 0, got 0.0.\n"
  code, _, err = jaxal("pretrain", f"--workdir={workdir}", f"--images={tmp_path}",
                       "--seed=-1")
  assert code == 2 and err.startswith("error: jaxal pretrain: --seed must lie in")
  code, _, err = jaxal("select", f"--workdir={workdir}", "--budget=3")
  assert code == 2 and err == "error: jaxal select: --method is required.\n"
  assert not workdir.exists()


def test_an_input_error_names_its_field_as_the_flag(monkeypatch):
  errors = iter([InputError("budget=9 is larger than the pool (5 samples).",
                            field="budget"),
                 InputError("7 is not a class.", field="num_classes"),
                 InputError("not a flag here.", field="probs"),
                 InputError("no field.")])

  def fail(wd, fv):
    raise next(errors)
  replace_run(monkeypatch, "select", fail)
  said = [jaxal("select", "--workdir=w")[2] for _ in range(4)]
  assert said == ["error: jaxal select: --budget=9 is larger than the pool "
                  "(5 samples).\n",
                  "error: jaxal select: --num_classes: 7 is not a class.\n",
                  "error: jaxal select: not a flag here.\n",
                  "error: jaxal select: no field.\n"]


def test_a_value_error_that_is_not_input_propagates(monkeypatch):
  def bug(wd, fv):
    raise ValueError("a fault of jaxal")
  replace_run(monkeypatch, "train", bug)
  with pytest.raises(ValueError, match="a fault of jaxal"):
    jaxal("train", "--workdir=w", "--labels=l.csv")


_FAULT = """
import dataclasses, sys
from jaxal.cli import command

def bug(wd, fv):
  raise ValueError("a fault of jaxal")
command.COMMANDS["report"] = dataclasses.replace(command.COMMANDS["report"], run=bug)
sys.argv = ["jaxal", "report", "--workdir=w", "--labels=l.csv"]
command.run()
"""


def test_a_fault_exits_1_with_its_traceback(tmp_path):
  out = subprocess.run([sys.executable, "-c", _FAULT], cwd=tmp_path,
                       env=subprocess_env(), capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 1, out.stderr
  assert "Traceback" in out.stderr and "ValueError: a fault of jaxal" in out.stderr
  assert "error: jaxal report" not in out.stderr
  assert not os.listdir(tmp_path)


def test_parse_errors_and_unknown_commands_keep_their_exit_status():
  code, _, err = jaxal("select", "--workdir=w", "--budget=many")
  assert code == 2 and err.startswith("error: jaxal select: ") and "--budget" in err
  code, _, err = jaxal("select", "--workdir=w", "extra")
  assert code == 2 and "unexpected arguments ['extra']" in err
  code, _, err = jaxal("embed", "--workdir=w", "--selection=s")
  assert code == 2 and "--selection: the embedding is shared" in err
  code, _, err = jaxal("pretrain", "--workdir=w", "--selection=s")
  assert code == 2 and "--selection: pretrain writes a source" in err
