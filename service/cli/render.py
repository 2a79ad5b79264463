"""How `enasctl` shows things in a terminal: genotypes, spaces, retraining runs (rich; no I/O
beyond the console it is given, no HTTP)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from enas_core.spaces import get_plugin, list_spaces, load


def genotype_lines(space: str, structured: Mapping[str, Any]) -> list[str]:
    """The structured form of a genotype as text lines, one per node or layer: the space plugin's
    `text_lines` (e.g. micro: per cell ``node k = op(input) + op(input)`` and the concatenated
    loose ends), or ``key: value`` lines for a space this installation does not know."""
    if space not in list_spaces():
        return [f"{key}: {value}" for key, value in structured.items()]
    text_lines = load(get_plugin(space).text_lines)
    lines: list[str] = text_lines(structured)
    return lines


def print_best(console: Console, best: Mapping[str, Any]) -> None:
    """The best architecture of a search (`EnasClient.best`): where it comes from, then its genotype."""
    arch = best["architecture"]
    score = best.get("score")
    origin = f"derived rank {best['rank']}" if best.get("source") == "derived" else "best sampled reward"
    score_text = "-" if score is None else f"{score:.4f}"
    console.print(f"[bold]search {best['search_id']}[/bold]: architecture {arch['id']} ({origin}, "
                  f"score {score_text}), hash {arch.get('hash')}")  # fmt: skip
    genotype = arch.get("genotype") or {}
    space = genotype.get("space", "?")
    console.print(f"space {space} {genotype.get('params', {})}; tokens {arch.get('tokens')}")
    for line in genotype_lines(space, arch.get("structured") or genotype.get("structured") or {}):
        console.print(f"  {line}", highlight=False)


def print_spaces(console: Console, described: Mapping[str, Mapping[str, Any]]) -> None:
    """One row per space: parameters, number of decisions, sizes (each labelled, exact and approximate)."""
    table = Table("space", "params", "decisions", show_lines=True)
    table.add_column("sizes", overflow="fold")  # exact integers: wrap them, never cut them
    for name, d in described.items():
        sizes = "\n".join(
            f"{s['label']}: {s['formula']} = {s['value']} ({s['approx']})" for s in d.get("sizes", [])
        )
        params = ", ".join(f"{k}={v}" for k, v in (d.get("params") or {}).items())
        table.add_row(name, params, str(d.get("num_tokens")), sizes or str(d.get("size")))
    console.print(table)


def print_retrains(console: Console, search_id: int, items: Sequence[Mapping[str, Any]]) -> None:
    """The retraining runs of a search: status, test score, parameters, FLOPs, epochs done."""
    if not items:
        console.print(f"search {search_id} has no retraining runs (yet)")
        return
    table = Table("retrain", "architecture", "status", "test score", "params", "FLOPs", "epochs", "error")
    for r in items:
        curve = (r.get("metrics") or {}).get("curve") or []
        score = "-" if r.get("test_score") is None else f"{r['test_score']:.4f}"
        table.add_row(str(r["id"]), str(r["architecture_id"]), r["status"], score, _count(r.get("params")),
                      _count(r.get("flops")), str(len(curve)), (r.get("error") or "")[:60])  # fmt: skip
    console.print(table)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
