"""matplotlib for jaxal's charts: imported only when a chart is drawn, with the
Agg backend (no display), and PNGs written whole (a temporary file renamed into
place, so an interrupted run never leaves half an image)."""

from __future__ import annotations

import os


class PlotsUnavailable(RuntimeError):
  """matplotlib is not installed."""


def pyplot():
  """`matplotlib.pyplot` on the Agg backend; PlotsUnavailable without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise PlotsUnavailable("plots need matplotlib: pip install matplotlib (it is in "
                           "requirements.txt)") from e
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(fig, plt, path: str, rect=(0, 0.08, 1, 1), dpi: int = 110) -> str:
  """Lays out `fig`, writes it to `path` atomically and closes it; returns path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.tight_layout(rect=rect)
  fig.savefig(tmp, dpi=dpi)
  plt.close(fig)
  os.replace(tmp, path)
  return path
