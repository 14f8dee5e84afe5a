"""The error jaxal raises for input it cannot use.

An `InputError` says what is wrong with an argument, a setting, a flag or a
file, and how to fix it. It may name the argument or setting it concerns
(`field`), so that a front end can speak of it in its own terms: the `jaxal`
command and the experiment scripts say `--flag` where the field is one of their
flags. Anything else jaxal raises is a fault of jaxal, not of its input.

`InputError` is a `ValueError`, so `except ValueError` keeps catching it.
"""

from __future__ import annotations

from typing import Optional


class InputError(ValueError):
  """Input jaxal cannot use; the message says which and how to fix it.

  `field` names the argument or setting concerned ("budget"; a nested setting
  dotted: "ssl.temperature"), or is None.

  >>> e = InputError("budget must be > 0, got 0.", field="budget")
  >>> e.field, isinstance(e, ValueError)
  ('budget', True)
  >>> e.renamed("--budget")
  '--budget must be > 0, got 0.'
  >>> InputError("0 is not a seed.", field="seeds").renamed("--seeds")
  '--seeds: 0 is not a seed.'
  """

  def __init__(self, message: str, field: Optional[str] = None):
    super().__init__(message)
    self.field = field

  def renamed(self, name: str) -> str:
    """The message with the field called `name` (a front end's name for it,
    such as a flag): a message opening with the field's name (followed by a
    space, "=" or ":") has it replaced, any other is prefixed with "name: "."""
    message = str(self)
    if message.startswith(name):
      return message
    rest = message[len(self.field):] if self.field and message.startswith(
        self.field) else None
    if rest is not None and rest[:1] in (" ", "=", ":"):
      return name + rest
    return f"{name}: {message}"
