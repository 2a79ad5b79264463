"""Search spaces (standard library only): decisions, validation, sizes, human forms.

`get_space(name, **params)` is the registry; `SPACES` maps names to classes.
"""

from __future__ import annotations

from enas_core.spaces.base import Decision, GenotypeError, Space
from enas_core.spaces.macro import MACRO_OPS, MacroSpace
from enas_core.spaces.micro import MICRO_OPS, MicroSpace
from enas_core.spaces.rnn import RNN_ACTIVATIONS, RnnSpace

SPACES: dict[str, type[Space]] = {"micro": MicroSpace, "macro": MacroSpace, "rnn": RnnSpace}


def get_space(name: str, **params: int) -> Space:
    """The configured space `name` ("micro" | "macro" | "rnn").

    Raises:
        GenotypeError: unknown name, unknown parameter or parameter out of range.
    """
    cls = SPACES.get(name)
    if cls is None:
        raise GenotypeError(f"unknown search space {name!r} (choose from {', '.join(SPACES)})")
    return cls(**params)


def list_spaces() -> list[str]:
    return list(SPACES)


__all__ = [
    "MACRO_OPS",
    "MICRO_OPS",
    "RNN_ACTIVATIONS",
    "SPACES",
    "Decision",
    "GenotypeError",
    "MacroSpace",
    "MicroSpace",
    "RnnSpace",
    "Space",
    "get_space",
    "list_spaces",
]
