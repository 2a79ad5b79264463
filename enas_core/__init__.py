"""The ENAS algorithm in pure PyTorch (torch, numpy and the standard library only; no service code).

Packages: `spaces` (the registry of search spaces and their contract, standard library only), `zoo`
(one folder per search space), `data` (datasets). Modules: `genotype`, `drawing`, `codegen` (standard
library only: the API imports them), `controller`, the trainers and the search loop (torch).
This file imports nothing, so that `import enas_core.spaces` does not pull torch.
"""
