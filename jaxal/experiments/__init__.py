"""The paper's experiments: Tables 2-12 as sweeps of cells (method guide §6).

    protocol   one cell: pools, M_S's outputs, selection, oracle, target, metrics
    sweep      cells, shards, the atomic per-cell store, cells.csv, progress
    runner     checks before any work, a table's run, rendering and plots
    tables     markdown/CSV/LaTeX tables in the paper's layout
    plots      ACC_t against budget, labeled images per class
    paper      the supplement's published numbers (data/paper_numbers.json)

`experiments/tables.py` (absl flags) is the command over `runner`; this package
reads no flags. It may import the method, the datasets and the models; nothing
below it imports it.
"""
