"""`python -m jaxal`: the `jaxal` command (see jaxal.cli)."""

from jaxal.cli.command import run

if __name__ == "__main__":
  run()
