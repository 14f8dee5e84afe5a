"""Acquisition functions that followed the paper: the cold-start functions on
features alone, TypiClust (ICML 2022), ProbCover (NeurIPS 2022) and MaxHerding
(ECCV 2024), and two that read a classifier too, UHerding (ICLR 2025: its
probabilities or logits) and DropQuery (TMLR 2024: a linear probe's weights).

Each module's docstring says what its paper states, what its authors' code does
where it differs, and what jaxal reconstructed. They share a k-means
(`kmeans`) and an exact lazy greedy for coverage (`coverage`), all in JAX,
seeded, O(N) memory beyond the features and sharded by rows over devices.
The functions live in their modules (`typiclust.typiclust`, ...); the three
cold-start functions are reached by name through `jaxal.acquisition.select`,
UHerding and DropQuery through their modules.
"""

