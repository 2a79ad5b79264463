"""Where a search's work can run on the Ray cluster: fail fast on the impossible, say why it waits.

A search has three roles, each needing ONE node that holds all of its resources (CPU, GPU and the
spec's custom resources; the sum over the cluster is not enough):

- the shared model actor (``resources.num_cpus``, ``num_gpus``, ``resources.shared``),
- the controller actor (``num_cpus``, no GPU, ``resources.controller``),
- each retraining task (``num_cpus``, ``num_gpus``, ``resources.retrain``).

`check_feasible` runs before any actor starts: a role that no alive node can ever hold fails the
search at once (`Unplaceable`, naming the role, the resource, what was asked and the largest any
node offers), unless ``ENAS_RAY_AUTOSCALING=1`` says the cluster may grow (then it waits).
`wait_placed` runs after the actors are created: while one is not placed because its resources are
taken (by other searches), the search is ``pending`` with a reason (`pending_reason`); once both
are ready it is ``running`` again. Cancels and worker stops are seen while waiting.

Node totals come from ``ray.nodes()``; free amounts per node and whether an actor was placed come
from Ray's GCS tables (``ray._private.state``; the public state API needs the dashboard, which the
worker does not start).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.actor import ActorHandle

from workers.config import SearchPlan

logger = logging.getLogger(__name__)

AUTOSCALING_ENV = "ENAS_RAY_AUTOSCALING"
POLL_S = 1.0
"""How often a waiting search re-checks its actors, the free resources and its cancel flag."""

Amounts = Mapping[str, float]


class Unplaceable(RuntimeError):
    """No node of the cluster can ever hold one of the search's roles."""


@dataclass(frozen=True)
class Need:
    """What one role asks of a single node: Ray resource name -> amount (zeros left out)."""

    role: str
    amounts: dict[str, float]


def role_needs(plan: SearchPlan) -> list[Need]:
    """The shared model's, the controller's and (when retraining runs) a retraining task's needs."""
    r = plan.resources
    needs = [
        Need("shared model", _amounts(r.shared_options())),
        Need("controller", _amounts(r.controller_options())),
    ]
    if plan.retrain_enabled and plan.retrain_top_k > 0:
        needs.append(Need("retraining task", _amounts(r.retrain_options())))
    return needs


def _amounts(options: Mapping[str, Any]) -> dict[str, float]:
    amounts = {"CPU": float(options.get("num_cpus", 0.0)), "GPU": float(options.get("num_gpus", 0.0))}
    amounts.update({k: float(v) for k, v in dict(options.get("resources") or {}).items()})
    return {k: v for k, v in amounts.items() if v > 0}


def fits(need: Amounts, node: Amounts) -> bool:
    """True when ``node`` holds every resource of ``need`` (amounts are totals or free amounts)."""
    return all(node.get(k, 0.0) >= v - 1e-9 for k, v in need.items())


def unplaceable_reason(need: Need, nodes: Sequence[Amounts]) -> str | None:
    """None when some node's totals hold all of ``need``; else why not (role, resource, asked,
    the largest any node offers)."""
    if any(fits(need.amounts, node) for node in nodes):
        return None
    short = _shortest(need, nodes)
    if short is not None:
        name, asked, largest = short
        return (
            f"no Ray node can hold the {need.role}: it asks for {_amount(asked, name)}, "
            f"the largest any node offers is {largest:g}"
        )
    return (
        f"no single Ray node can hold the {need.role}: it asks for {_listing(need.amounts)} on one "
        f"node, and each node lacks part of it"
    )


def pending_reason(need: Need, totals: Sequence[Amounts], free: Sequence[Amounts]) -> str | None:
    """Why ``need`` waits: the first resource that no fitting node (by totals) has free enough of.

    ``totals[i]`` and ``free[i]`` describe the same node. None when a fitting node has it all free
    (the role is about to be placed).
    """
    fitting = [f for t, f in zip(totals, free, strict=True) if fits(need.amounts, t)]
    if any(fits(need.amounts, f) for f in fitting):
        return None
    short = _shortest(need, fitting)
    if short is not None:
        name, asked, most = short
        return (
            f"waiting for {_amount(asked, name)} for the {need.role}: {most:g} of {asked:g} free "
            f"on the nodes that fit"
        )
    return f"waiting for {_listing(need.amounts)} together on one node for the {need.role}"


def _shortest(need: Need, nodes: Sequence[Amounts]) -> tuple[str, float, float] | None:
    """The first resource of ``need`` that no node of ``nodes`` has enough of: ``(name, asked, the
    most any of them has)``; None when each resource alone is somewhere."""
    for name, asked in need.amounts.items():
        most = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if most < asked - 1e-9:
            return name, asked, most
    return None


def _amount(value: float, name: str) -> str:
    return f"{value:g} {name}"


def _listing(amounts: Amounts) -> str:
    return ", ".join(_amount(v, k) for k, v in amounts.items())


def autoscaling() -> bool:
    """``ENAS_RAY_AUTOSCALING=1``: the cluster may add nodes, so an impossible request waits."""
    return os.environ.get(AUTOSCALING_ENV, "").strip().lower() in ("1", "true", "yes")


def node_totals() -> list[dict[str, float]]:
    """Each alive node's total resources (``ray.nodes()``)."""
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def node_totals_and_free() -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Each alive node's totals and free amounts, in the same order."""
    from ray._private import state

    free = state.available_resources_per_node()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return [dict(n["Resources"]) for n in alive], [dict(free.get(n["NodeID"], {})) for n in alive]


def check_feasible(plan: SearchPlan) -> None:
    """Raise `Unplaceable` when a role of ``plan`` fits on no alive node (logged only, and waited
    for, when `autoscaling`)."""
    nodes = node_totals()
    for need in role_needs(plan):
        reason = unplaceable_reason(need, nodes)
        if reason is None:
            continue
        if autoscaling():
            logger.warning("%s; waiting for the cluster to scale (%s=1)", reason, AUTOSCALING_ENV)
            continue
        raise Unplaceable(f"{reason} (resources in the spec; set {AUTOSCALING_ENV}=1 if the cluster scales)")


def placed(actor: ActorHandle) -> bool:
    """True once Ray has leased a worker process for ``actor`` (its resources are taken)."""
    from ray._private import state

    table: Any = state.actors(actor._actor_id.hex())  # noqa: SLF001 - the actor's id, no public getter
    return bool(table and table.get("Address", {}).get("Port"))


def waiting_reason(waiting: Sequence[tuple[Need, ActorHandle]]) -> str | None:
    """The reason of the first unplaced actor whose resources are busy (None: none waits)."""
    unplaced = [need for need, actor in waiting if not placed(actor)]
    if not unplaced:
        return None
    totals, free = node_totals_and_free()
    for need in unplaced:
        impossible = unplaceable_reason(need, totals)
        if impossible is not None:
            return f"waiting for the cluster to scale up: {impossible}" if autoscaling() else impossible
        reason = pending_reason(need, totals, free)
        if reason is not None:
            return reason
    return None


def wait_placed(
    plan: SearchPlan,
    controller: ActorHandle,
    shared: ActorHandle,
    *,
    check: Callable[[], None],
    set_pending: Callable[[str | None], None],
    poll_s: float = POLL_S,
) -> None:
    """Return once both actors are ready (constructed, or failed: the first call then raises).

    Every ``poll_s`` while they are not: ``check()`` (raises on cancel / stop) and, when an actor
    waits for busy resources, ``set_pending(reason)`` (only when the reason changes). After a
    pending spell ``set_pending(None)`` marks the search running again.
    """
    needs = {n.role: n for n in role_needs(plan)}
    actors = [(needs["controller"], controller), (needs["shared model"], shared)]
    refs: list[Any] = [controller.__ray_ready__.remote(), shared.__ray_ready__.remote()]
    shown: str | None = None
    while True:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=poll_s)
        if len(ready) == len(refs):
            break
        check()
        reason = waiting_reason(actors)
        if reason is not None and reason != shown:
            logger.info("pending: %s", reason)
            set_pending(reason)
            shown = reason
    if shown is not None:
        set_pending(None)
