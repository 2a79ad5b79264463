"""What the image spaces' shared-weight (search layout) networks share beyond `image_ops`.

Not exported into model.py (the final children never run the search layout).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from torch import Tensor, nn


class SearchCellLike(Protocol):
    """A search-layout cell: `pre_reduce` (a reduction cell's factorized reduction of the previous
    output, else None), `reduction`, and the call on its two inputs and its cell's genotype part."""

    pre_reduce: nn.Module | None
    reduction: bool

    def __call__(self, s0: Tensor, s1: Tensor, part: Any) -> Tensor: ...


def search_step(cell: nn.Module, s0: Tensor, s1: Tensor, normal: Any, reduce: Any) -> tuple[Tensor, Tensor]:
    """One search-layout cell's run (the step of `CellStack._stack`): a reduction cell first
    factorized-reduces the previous output, then runs at stride 1 on (previous output, its
    reduction) with the reduction cell's part of the genotype (`reduce`), a normal cell on its
    two inputs with `normal`. Returns the next (s0, s1)."""
    search_cell = cast(SearchCellLike, cell)
    if search_cell.pre_reduce is not None:
        s0, s1 = s1, search_cell.pre_reduce(s1)  # (B, C_prev, H, W), (B, C, H/2, W/2)
    return s1, search_cell(s0, s1, reduce if search_cell.reduction else normal)
