"""The paper's experiments: Tables 2-12 of the paper and Tables 13-16 beyond it,
as sweeps of cells (method guide §6).

    protocol       one cell: a pipeline over the modules below, target, metrics
    _settings      what a sweep's cells share: data, M_S, SimCLR, targets
    _pools         the imbalanced and balanced pools and their test splits
    _sources       M_S trained here or read from a work directory; SimCLR
    _output_cache  models' outputs by digest, resumable by chunk
    _selection     a cell's selection: single shot, balanced, or in rounds
    _zeroshot      Table 16's zero-shot probabilities (SigLIP, or a stand-in)
    _memo          digests of what determines a result; a bounded LRU dict
    sweep          cells, shards, the atomic per-cell store, cells.csv, progress
    runner         checks before any work, a table's run, rendering and plots
    render         markdown/CSV/LaTeX tables in the paper's layout
    plots          ACC_t against budget, labeled images per class
    paper          the supplement's published numbers (data/paper_numbers.json)

`experiments/tables.py` (absl flags) is the command over `runner`; this package
reads no flags. It may import the method, the datasets and the models; nothing
below it imports it.
"""
