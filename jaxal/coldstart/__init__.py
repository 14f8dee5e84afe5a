"""Cold-start acquisition functions that followed the paper, on features alone:
TypiClust (ICML 2022), ProbCover (NeurIPS 2022) and MaxHerding (ECCV 2024).

Each module's docstring says what its paper states, what its authors' code does
where it differs, and what jaxal reconstructed. They share a k-means
(`kmeans`) and an exact lazy greedy for coverage (`coverage`), all in JAX,
seeded, O(N) memory beyond the features and sharded by rows over devices.
The functions live in their modules (`typiclust.typiclust`, ...) and are
reached by name through `jaxal.acquisition.select`.
"""

