"""Versioned, canonical genotypes (standard library only); `genotype_svg` draws one.

A `Genotype` is (space name, space params, raw tokens). It always holds a valid genotype
(construction validates). `hash()` is computed from the CANONICAL tokens, so equivalent
encodings (e.g. a micro node's two inputs swapped) share a hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from enas_core.drawing import render
from enas_core.spaces import GenotypeError, Space, get_plugin, get_space, load

GENOTYPE_VERSION = 1


@dataclass(frozen=True)
class Genotype:
    """One architecture of one configured space.

    `params` may be given as a dict; it is stored as sorted (name, value) pairs.
    Raises GenotypeError when the space, its params or the tokens are invalid.
    """

    space: str
    params: tuple[tuple[str, int], ...]
    tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        space = get_space(self.space, **dict(self.params))
        object.__setattr__(self, "params", tuple(space.params.items()))
        object.__setattr__(self, "tokens", space.tokens(self.tokens))

    @classmethod
    def of(cls, space: Space, tokens: Sequence[int]) -> Genotype:
        """The genotype `tokens` of a configured space (validates)."""
        return cls(space.name, tuple(space.params.items()), tuple(tokens))

    def get_space(self) -> Space:
        return get_space(self.space, **dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        """{"version", "space", "params", "tokens", "structured"}."""
        space = self.get_space()
        return {
            "version": GENOTYPE_VERSION,
            "space": self.space,
            "params": dict(self.params),
            "tokens": list(self.tokens),
            "structured": space.structured(self.tokens),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Genotype:
        """Parse and validate; `tokens` wins over `structured` when both are given.

        Raises:
            GenotypeError: wrong version, unknown space or params, invalid tokens.
        """
        if not isinstance(d, Mapping):
            raise GenotypeError("genotype must be a JSON object")
        version = d.get("version", GENOTYPE_VERSION)
        if version != GENOTYPE_VERSION:
            raise GenotypeError(f"unsupported genotype version {version!r} (expected {GENOTYPE_VERSION})")
        name = d.get("space")
        if not isinstance(name, str):
            raise GenotypeError("genotype needs a 'space' name")
        params = d.get("params") or {}
        if not isinstance(params, Mapping):
            raise GenotypeError("genotype 'params' must be an object")
        space = get_space(name, **params)
        if "tokens" in d:
            tokens = space.tokens(d["tokens"])
        elif "structured" in d:
            tokens = space.from_structured(d["structured"])
        else:
            raise GenotypeError("genotype needs 'tokens' or 'structured'")
        return cls.of(space, tokens)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def canonical_tokens(self) -> tuple[int, ...]:
        return self.get_space().canonical(self.tokens)

    def hash(self) -> str:
        """sha256 hex[:16] of the canonical tokens, the space name and its params."""
        payload = {"space": self.space, "params": dict(self.params), "tokens": list(self.canonical_tokens())}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def genotype_svg(g: Genotype) -> str:
    """The genotype drawn as a standalone SVG document (text): the columns its space's plugin
    draws (`SpacePlugin.draw`), laid out by `enas_core.drawing.render`."""
    draw = load(get_plugin(g.space).draw)
    return render(
        draw(g.get_space(), g.tokens), title=f"{g.space} genotype {g.hash()}", ids=f"g{g.hash()[:10]}"
    )
