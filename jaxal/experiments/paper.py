"""The paper's published numbers (supplement Tables 6-12), to print beside ours.

`data/paper_numbers.json` is transcribed by hand from the supplementary material
(`shared/paper/supplement.txt`); its notes list what the transcription had to
interpret. Main-paper Tables 2 and 3 are not available, but Tables 6 and 7 copy
their non-ensemble rows, so those cells of Tables 2 and 3 have published numbers
too; Tables 4 and 5 (classes found and imbalance ratio on the imbalanced pools)
have none.

    >>> published(6, "random", ensemble=False, stat="acc_t", column="food101",
    ...           budget=500)
    23.02
"""

from __future__ import annotations

import functools
import json
import os
from typing import Optional

PATH = os.path.join(os.path.dirname(__file__), "data", "paper_numbers.json")
BUDGETS = (500, 1000, 2000)
# Tables of the main paper whose cells the supplement copies: table -> (table, ensemble)
_COPIED = {2: 6, 3: 7}


@functools.lru_cache(maxsize=1)
def document() -> dict:
  """The whole data file: {"source", "budgets", "notes", "rows"}."""
  with open(PATH) as f:
    return json.load(f)


def rows(table: int) -> list[dict]:
  """Rows of a supplement table (6-12): dicts with method, ensemble (0/1), stat,
  values {column: [three budgets] or a number for "full"}, summary (G_AL,
  Average or None)."""
  return [r for r in document()["rows"] if r["table"] == table]


def published(table: int, method: str, *, ensemble: bool, stat: str, column: str,
              budget: Optional[int]) -> Optional[float]:
  """The published value of one cell, or None where the supplement has none.

  Args:
    table: paper table 2-12 (2 and 3 read the rows that 6 and 7 copy).
    method: a name of `jaxal.acquisition.METHODS`, or "full".
    ensemble: the "+ens" row.
    stat: "acc_t", "classes_found" or "imbalance_ratio".
    column: dataset name, or "dataset:target" in Table 12.
    budget: 500, 1000 or 2000; None for the Full row.
  """
  source = _COPIED.get(table, table)
  if source != table and ensemble:
    return None
  for r in rows(source):
    if (r["method"], bool(r["ensemble"]), r["stat"]) != (method, ensemble, stat):
      continue
    value = r["values"].get(column)
    if value is None:
      return None
    if method == "full":
      return float(value)
    if budget not in BUDGETS:
      return None
    return float(value[BUDGETS.index(budget)])
  return None


def published_summary(table: int, method: str, *, ensemble: bool,
                      stat: str) -> Optional[float]:
  """The row's G_AL (acc_t tables) or Average (Tables 10-11), if printed."""
  source = _COPIED.get(table, table)
  if source != table and ensemble:
    return None
  for r in rows(source):
    if (r["method"], bool(r["ensemble"]), r["stat"]) == (method, ensemble, stat):
      return r["summary"]
  return None
