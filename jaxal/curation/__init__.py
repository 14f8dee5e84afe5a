"""Looking at a pool before labeling it: exact near-duplicates and per-image
scores, from one blocked pass over the features::

    neighbors   every pair closer than a threshold (exact) and each image's
                nearest neighbours, in O(N k) memory beyond the features
    duplicates  pairs -> groups (transitive) -> one representative per group
    scores      uniqueness and representativeness from the neighbours
    projection  the pool's map: its first two principal components

Not part of the paper: practitioners clean a pool before selection, and a
budget spent on three copies of one scene finds no new class (the imbalance the
paper is about makes the frequent classes' copies the likeliest).
"""
