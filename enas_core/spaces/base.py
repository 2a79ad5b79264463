"""The search-space contract: one `Space` instance describes one configured space.

Standard library only (the API process validates and draws genotypes without torch).

A genotype is a flat list of integer decisions (the controller's raw tokens). Every space
describes each token position by a `Decision` (where it is, what it chooses, how many choices),
which gives generic validation with messages that name the position, and lets the controller
and the UI walk the decisions without knowing the space.
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, SupportsIndex


class GenotypeError(ValueError):
    """An invalid genotype, space name or space parameter.

    `position` is the offending token index when the error is about one token, else None.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Decision:
    """One token position: `where` (e.g. "normal cell node 2"), `what` (e.g. "input index"),
    `kind` (input | op | skip | activation) and `choices` (valid values are 0..choices-1)."""

    position: int
    where: str
    what: str
    kind: str
    choices: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "where": self.where,
            "what": self.what,
            "kind": self.kind,
            "choices": self.choices,
        }


def approx(n: int) -> str:
    """A big integer as a short scientific string, e.g. 1.296e+11."""
    return f"{float(n):.4g}" if n >= 10**6 else str(n)


class SpaceParam:
    """A space parameter as a read-only attribute: ``num_layers = SpaceParam()`` in a `Space`
    subclass reads ``self.params["num_layers"]``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, space: Space, owner: type | None = None) -> int:
        return space.params[self.name]


class Space(abc.ABC):
    """One configured search space.

    Subclasses set `name` and `defaults` (the parameter names and default values) and implement
    `_decisions`, `structured`, `from_structured`, `size` and `_sizes`.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, int]]
    minimums: ClassVar[dict[str, int]] = {}
    maximums: ClassVar[dict[str, int]] = {}

    def __init__(self, **params: int) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise GenotypeError(f"{self.name} space has no parameter {unknown[0]!r}")
        merged = {**self.defaults, **params}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise GenotypeError(f"{self.name} space parameter {key!r} must be an integer, got {value!r}")
            low, high = self.minimums.get(key, 1), self.maximums.get(key)
            if value < low or (high is not None and value > high):
                bound = f"[{low}, {high}]" if high is not None else f">= {low}"
                raise GenotypeError(f"{self.name} space parameter {key!r} = {value} must be {bound}")
        self.params: dict[str, int] = dict(sorted(merged.items()))
        self.decisions: tuple[Decision, ...] = tuple(self._decisions())
        self.num_tokens: int = len(self.decisions)

    # --- subclass hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _decisions(self) -> list[Decision]:
        """The decision at each token position, in token order."""

    @abc.abstractmethod
    def structured(self, tokens: Sequence[int]) -> dict[str, Any]:
        """The human form of a valid genotype (validates first)."""

    @abc.abstractmethod
    def from_structured(self, d: Mapping[str, Any]) -> tuple[int, ...]:
        """Inverse of `structured` (extra keys ignored); raises GenotypeError."""

    @abc.abstractmethod
    def size(self) -> int:
        """The size of the space (see `describe()["sizes"]` for what each count means)."""

    @abc.abstractmethod
    def _sizes(self) -> list[dict[str, Any]]:
        """Labelled size counts: [{"label", "formula", "value"}]."""

    def _extra_description(self) -> dict[str, Any]:
        return {}

    # --- generic behaviour ----------------------------------------------------------------
    def validate(self, tokens: Sequence[int]) -> None:
        """Raise GenotypeError (naming the position) unless `tokens` is a genotype of this space."""
        if isinstance(tokens, str | bytes) or not isinstance(tokens, Sequence):
            raise GenotypeError(
                f"{self.name} genotype must be a list of integers, got {type(tokens).__name__}"
            )
        if len(tokens) != self.num_tokens:
            raise GenotypeError(f"{self.name} genotype needs {self.num_tokens} tokens, got {len(tokens)}")
        for decision, token in zip(self.decisions, tokens, strict=True):
            value = _as_int(token, decision)
            if not 0 <= value < decision.choices:
                raise GenotypeError(
                    f"{decision.where}: {decision.what} {value} out of range [0, {decision.choices - 1}]"
                    f" (token {decision.position})",
                    position=decision.position,
                )

    def tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Validate and return the tokens as a tuple of plain ints."""
        self.validate(tokens)
        return tuple(operator.index(t) for t in tokens)

    def canonical(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Normal form of equivalent encodings (the hash input); identity unless overridden."""
        return self.tokens(tokens)

    def describe(self) -> dict[str, Any]:
        """Everything GET /spaces shows: parameters, decisions and labelled sizes."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "num_tokens": self.num_tokens,
            "decisions": [d.to_dict() for d in self.decisions],
            "size": self.size(),
            "sizes": [{**s, "approx": approx(s["value"])} for s in self._sizes()],
            **self._extra_description(),
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and (self.name, self.params) == (other.name, other.params)

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.params.items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _as_int(token: object, decision: Decision) -> int:
    error = GenotypeError(
        f"{decision.where}: {decision.what} must be an integer, got {token!r} (token {decision.position})",
        position=decision.position,
    )
    if isinstance(token, bool) or not isinstance(token, SupportsIndex):
        raise error
    try:
        return operator.index(token)
    except TypeError:
        raise error from None


class ArrayLike(Protocol):
    """A 1-d array of tokens (e.g. a torch tensor): anything with ``tolist()``."""

    def tolist(self) -> Any: ...


def int_list(tokens: Sequence[int] | ArrayLike) -> list[int]:
    """Tokens given as a sequence or a 1-d array, as a list of plain ints."""
    return [int(t) for t in (tokens if isinstance(tokens, Sequence) else tokens.tolist())]


def choice_index(value: object, names: Sequence[str], where: str) -> int:
    """An op given by name or index -> its index; raises GenotypeError."""
    if isinstance(value, str):
        if value not in names:
            raise GenotypeError(f"{where}: unknown op {value!r} (choose from {', '.join(names)})")
        return names.index(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenotypeError(f"{where}: expected an op name or index, got {value!r}")
    return value


def require_list(d: Mapping[str, Any], key: str, length: int, where: str) -> list[Any]:
    """`d[key]` as a list of exactly `length` items; raises GenotypeError."""
    if not isinstance(d, Mapping) or key not in d:
        raise GenotypeError(f"{where}: missing {key!r}")
    value = d[key]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != length:
        raise GenotypeError(f"{where}: {key!r} must be a list of {length} items")
    return list(value)
