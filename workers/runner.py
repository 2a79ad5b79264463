"""The Ray driver of one search: epochs on two actors, derivation, retraining, final status.

Per epoch (ENAS_SPEC sections 2-3): the shared phase (the controller samples one architecture per
minibatch, the shared model trains one minibatch on each), then the controller phase
(``steps_per_epoch`` x: sample ``archs_per_step`` -> rewards on validation minibatches -> one
REINFORCE update). Samples flow between the actors as object refs; the driver keeps at most two
steps in flight and fetches each finished step's results, so it can stop at a batch boundary.
Each epoch is written with one ``store.record_epoch`` and announced with one event.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ray
from ray.actor import ActorHandle

from enas_core.genotype import Genotype
from enas_core.spaces import Space
from service.errors import Conflict
from service.queue import FINISHED, JobQueue
from service.records import DerivedRecord, SearchRecord
from service.settings import Settings
from service.store import Store
from workers.actors import ControllerView, SharedView, check_resources, create_actors, ensure_ray, kill_actors
from workers.config import SearchPlan, build_plan
from workers.retrain import retrain_derived

logger = logging.getLogger(__name__)

TRAIN_CHUNK = 64
"""Architectures per shared-training call: the granularity of cancel checks in the shared phase."""
IN_FLIGHT = 2
"""Steps submitted ahead of the one being fetched (keeps both actors busy)."""
ERROR_MAX_CHARS = 2000
TRACEBACK_MAX_CHARS = 8000


class SearchCancelled(Exception):
    """A cancel was requested (API); the search ends ``cancelled``."""


class SearchInterrupted(Exception):
    """The worker is stopping; the search stays ``running`` and goes back on the queue."""


@dataclass
class SearchRun:
    """The state of one run, passed between the phases (the driver's side only)."""

    search_id: int
    store: Store
    queue: JobQueue
    plan: SearchPlan
    space: Space
    fencing_token: int
    stop_event: threading.Event
    genotypes: dict[tuple[int, ...], tuple[dict[str, Any], str]] = field(default_factory=dict)

    def check(self) -> None:
        """Raise SearchInterrupted (worker stopping) or SearchCancelled (cancel requested)."""
        if self.stop_event.is_set():
            raise SearchInterrupted(f"search {self.search_id}: worker stopping")
        if self.queue.cancel_requested(self.search_id):
            raise SearchCancelled(f"search {self.search_id}: cancel requested")

    def genotype(self, tokens: Sequence[int]) -> tuple[dict[str, Any], str]:
        """``(genotype dict, hash)`` of ``tokens``, memoised for the run."""
        key = tuple(tokens)
        if key not in self.genotypes:
            g = Genotype.of(self.space, key)
            self.genotypes[key] = (g.to_dict(), g.hash())
        return self.genotypes[key]


def run_search(
    search_id: int,
    *,
    store: Store,
    queue: JobQueue,
    settings: Settings,
    worker_id: str | None = None,
    stop_event: threading.Event | None = None,
) -> SearchRecord:
    """Run one search to its end and return its final record.

    Marks it running, runs the epochs, derives, retrains, and finishes it ``succeeded``,
    ``cancelled`` (cancel flag seen at a batch boundary) or ``failed`` (any error: the message
    and a traceback are stored). Publishes a ``status`` event first and a ``finished`` event last.
    A search that finished meanwhile, or that another worker re-claimed (a newer fencing token
    from `Store.mark_running`), is returned as the store has it, without finishing it.

    Raises:
        SearchInterrupted: ``stop_event`` was set; the search is left ``running`` for a re-claim.
        service.errors.EnasError: the store failed while recording the outcome.
    """
    try:
        record = store.mark_running(search_id=search_id, worker_id=worker_id)
    except Conflict:
        return store.get_search(search_id=search_id)
    queue.publish(search_id, {"type": "status", "status": "running", "worker": worker_id})
    stop = stop_event or threading.Event()
    status, error, trace = "succeeded", None, None
    try:
        plan = build_plan(record.spec, data_root=settings.data_dir)
        run = SearchRun(search_id, store, queue, plan, plan.space(), record.fencing_token, stop)
        ensure_ray(settings)
        check_resources(plan, local=settings.ray_address is None)
        derived = search_and_derive(run)
        retrain_phase(run, derived)
    except SearchInterrupted:
        queue.publish(search_id, {"type": "status", "status": "requeued", "worker": worker_id})
        raise
    except SearchCancelled:
        status = "cancelled"
    except Exception as e:  # noqa: BLE001 - every failure of a search is recorded on it
        status, (error, trace) = "failed", describe_error(e)
        logger.exception("search %s failed", search_id)
    try:
        final = store.finish_search(
            search_id=search_id,
            status=status,
            error=error,
            traceback=trace,
            fencing_token=record.fencing_token,
        )
    except Conflict:  # another worker re-claimed it (newer fencing token): the outcome is theirs
        current = store.get_search(search_id=search_id)
        logger.warning(
            "search %s: fenced out (now %s, held by %s)", search_id, current.status, current.lease_owner
        )
        return current
    queue.publish(search_id, {"type": FINISHED, "status": status, "error": error})
    return final


def search_and_derive(run: SearchRun) -> list[DerivedRecord]:
    """Run every epoch and the derivation on a fresh pair of actors; returns the derived rows.

    The actors are killed on the way out (before retraining, which needs their resources).
    """
    run.check()  # a cancel or stop that came while queued: no actors to start
    controller = shared = None
    try:
        controller, shared = create_actors(run.plan, run.search_id)
        steps = int(ray.get(shared.steps_per_epoch.remote()))
        for epoch in range(run.plan.epochs):
            run_epoch(run, controller, shared, epoch, steps)
        return derive_phase(run, controller, shared)
    finally:
        kill_actors(controller, shared)


def _pipelined(submit: Callable[[int], Any], count: int, check: Callable[[], None]) -> list[Any]:
    """Submit ``count`` steps keeping at most IN_FLIGHT unfetched; return their results in order.

    A step is an ObjectRef or a list of ObjectRefs (fetched as a list).
    ``check`` runs before each submission (it raises to stop at that batch boundary).
    """
    results: list[Any] = []
    pending: deque[Any] = deque()
    for i in range(count):
        check()
        pending.append(submit(i))
        if len(pending) >= IN_FLIGHT:
            results.append(ray.get(pending.popleft()))
    results.extend(ray.get(p) for p in pending)
    return results


def run_epoch(run: SearchRun, controller: ActorHandle, shared: ActorHandle, epoch: int, steps: int) -> None:
    """One epoch on the actors: the shared phase, the controller phase, then `publish_epoch`."""
    started_at, began = datetime.now(UTC), time.perf_counter()
    train_batch, train_parts = shared_phase(run, controller, shared, epoch, steps)
    shared_seconds = time.perf_counter() - began
    steps_out = controller_phase(run, controller, shared)
    duration = time.perf_counter() - began
    rows = architecture_rows(run, ray.get(train_batch), train_parts, steps_out)
    metrics = epoch_metrics(train_parts, steps_out, shared_seconds, duration, len(rows))
    publish_epoch(run, epoch, rows, metrics, started_at, duration)


def shared_phase(
    run: SearchRun, controller: ActorHandle, shared: ActorHandle, epoch: int, steps: int
) -> tuple[Any, list[dict[str, Any]]]:
    """Sample ``steps`` architectures and train one minibatch on each, in chunks of TRAIN_CHUNK.

    Returns the sampled batch's ObjectRef and the training metrics of each chunk."""
    train_batch = controller.sample.remote(steps)

    def train_chunk(i: int) -> Any:
        return shared.train.remote(train_batch, epoch, i * TRAIN_CHUNK, (i + 1) * TRAIN_CHUNK)

    return train_batch, _pipelined(train_chunk, -(-steps // TRAIN_CHUNK), run.check)


def controller_phase(run: SearchRun, controller: ActorHandle, shared: ActorHandle) -> list[list[Any]]:
    """``steps_per_epoch`` x (sample ``archs_per_step`` -> rewards -> one update), the sample and
    the rewards passed between the actors as ObjectRefs. Returns ``[batch, rewards, update]``
    per step."""
    ctrl = run.plan.controller_train

    def step(_: int) -> list[Any]:
        batch = controller.sample.remote(ctrl.archs_per_step)
        rewards = shared.rewards.remote(batch)
        return [batch, rewards, controller.update.remote(batch, rewards)]

    return _pipelined(step, ctrl.steps_per_epoch, run.check)


def publish_epoch(
    run: SearchRun,
    epoch: int,
    rows: list[dict[str, Any]],
    metrics: dict[str, Any],
    started_at: datetime,
    duration: float,
) -> None:
    """Write the epoch (one `record_epoch`), publish its event, log it.

    Raises SearchCancelled when the store reports a cancel request (the database's flag).
    """
    record = run.store.record_epoch(
        search_id=run.search_id,
        epoch=epoch,
        metrics=metrics,
        architectures=rows,
        started_at=started_at,
        duration_s=duration,
        fencing_token=run.fencing_token,
    )
    event = {"type": "epoch", "epoch": epoch, "total": run.plan.epochs, "metrics": metrics}
    run.queue.publish(run.search_id, {**event, "best_reward": record.best_reward})
    reward = metrics.get("reward_mean") or 0.0
    logger.info(
        "search %s: epoch %d/%d reward %.4f (%.1fs)",
        run.search_id,
        epoch + 1,
        run.plan.epochs,
        reward,
        duration,
    )
    if record.cancel_requested:
        raise SearchCancelled(f"search {run.search_id}: cancel requested")


def architecture_rows(
    run: SearchRun,
    samples: Mapping[str, list[Any]],
    train_parts: Sequence[Mapping[str, Any]],
    steps_out: Sequence[Sequence[Any]],
) -> list[dict[str, Any]]:
    """The epoch's ``architectures`` rows: phase 'train' (minibatch loss/accuracy) then phase
    'sample' (reward), each with tokens, genotype, hash, entropy and log-prob."""
    per_arch = [pa for part in train_parts for pa in part.get("per_arch", [])]
    rows = []
    for i, tokens in enumerate(samples["tokens"]):
        stats = per_arch[i] if i < len(per_arch) else {}
        rows.append(
            _row(run, "train", i, tokens, samples, i, loss=stats.get("loss"), accuracy=stats.get("accuracy"))
        )
    index = 0
    for batch, rewards, _update in steps_out:
        for j, (tokens, reward) in enumerate(zip(batch["tokens"], rewards, strict=True)):
            rows.append(_row(run, "sample", index, tokens, batch, j, reward=reward))
            index += 1
    return rows


def _row(
    run: SearchRun,
    phase: str,
    index: int,
    tokens: list[int],
    batch: Mapping[str, list[Any]],
    j: int,
    **values: Any,
) -> dict[str, Any]:
    genotype, digest = run.genotype(tokens)
    return {
        "phase": phase,
        "index": index,
        "tokens": list(tokens),
        "genotype": genotype,
        "hash": digest,
        "entropy": batch["entropy"][j],
        "log_prob": batch["log_prob"][j],
        **values,
    }


def _weighted(parts: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """Mean of ``key`` over training chunks, weighted by their number of steps."""
    pairs = [(len(p.get("per_arch", [])) or 1, p[key]) for p in parts if p.get(key) is not None]
    total = sum(n for n, _ in pairs)
    return sum(n * v for n, v in pairs) / total if total else None


def epoch_metrics(
    train_parts: Sequence[Mapping[str, Any]],
    steps_out: Sequence[Sequence[Any]],
    shared_seconds: float,
    duration: float,
    num_archs: int,
) -> dict[str, Any]:
    """The epoch's metrics: shared loss/accuracy (or perplexity), lr, throughput, rewards,
    baseline, entropy, controller loss, timings."""
    metrics: dict[str, Any] = {
        "shared_loss": _weighted(train_parts, "loss"),
        "lr": train_parts[-1].get("lr") if train_parts else None,
        "images_per_s": _weighted(train_parts, "images_per_s"),
    }
    for key in ("accuracy", "perplexity"):
        if any(key in p for p in train_parts):
            metrics[f"shared_{key}"] = _weighted(train_parts, key)
    rewards = [float(r) for _, rs, _ in steps_out for r in rs]
    updates = [u for _, _, u in steps_out]
    entropies = [float(e) for b, _, _ in steps_out for e in b["entropy"]]
    if rewards:
        metrics.update(
            reward_mean=sum(rewards) / len(rewards),
            reward_max=max(rewards),
            reward_min=min(rewards),
            baseline=updates[-1].get("baseline"),
            entropy=sum(entropies) / len(entropies),
            controller_loss=sum(u["loss"] for u in updates) / len(updates),
            skip_penalty=sum(u.get("skip_penalty", 0.0) for u in updates) / len(updates),
        )
    metrics.update(
        archs_per_s=num_archs / duration if duration > 0 else None,
        shared_seconds=shared_seconds,
        controller_seconds=duration - shared_seconds,
        duration_s=duration,
    )
    return metrics


def derive_phase(run: SearchRun, controller: ActorHandle, shared: ActorHandle) -> list[DerivedRecord]:
    """Sample ``derive.num_samples`` architectures, keep the best ``derive.top_k`` distinct ones
    by their score on one validation minibatch (`enas_core.search.derive`), store them."""
    from enas_core.search import derive

    run.check()
    plan = run.plan
    ranked = derive(
        SharedView(shared),  # type: ignore[arg-type]
        ControllerView(controller, run.space),  # type: ignore[arg-type]
        plan.derive_num_samples,
        plan.derive_top_k,
    )
    items = []
    for tokens, score in ranked:
        genotype, digest = run.genotype(tokens)
        items.append({"tokens": list(tokens), "genotype": genotype, "hash": digest, "score": score})
    derived = run.store.record_derived(search_id=run.search_id, items=items, epoch=plan.epochs - 1)
    summary = [{"rank": d.rank, "architecture_id": d.architecture_id, "score": d.score} for d in derived]
    run.queue.publish(run.search_id, {"type": "derived", "items": summary})
    return derived


def retrain_phase(run: SearchRun, derived: Sequence[DerivedRecord]) -> None:
    """Retrain the best ``retrain.top_k`` derived architectures as Ray tasks (when enabled).

    Raises SearchCancelled / SearchInterrupted when a cancel or a stop came while they ran.
    """
    if not run.plan.retrain_enabled or run.plan.retrain_top_k <= 0:
        return
    chosen = list(derived)[: run.plan.retrain_top_k]
    results = retrain_derived(run.store, run.search_id, run.plan, chosen, run.check)
    run.queue.publish(run.search_id, {"type": "retrained", "items": results})
    if any(r["status"] == "cancelled" for r in results):
        raise SearchCancelled(f"search {run.search_id}: cancelled during retraining")


def describe_error(exc: BaseException) -> tuple[str, str]:
    """``(message, traceback)`` for the search row: the root error (Ray wrappers unwrapped)
    as ``"Type: message"``, and the full traceback, both truncated."""
    root = _root_cause(exc)
    message = f"{type(root).__name__}: {root}".strip()
    if isinstance(root, ray.exceptions.RayError):  # its text is a remote traceback
        message = _ray_error_message(root) or message.splitlines()[0]
    trace = "".join(traceback.format_exception(exc))
    return message[:ERROR_MAX_CHARS], trace[-TRACEBACK_MAX_CHARS:]


def _root_cause(exc: BaseException) -> BaseException:
    """The user-level exception inside Ray's wrappers (RayTaskError.cause, chained causes)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            exc = cause
            continue
        break
    return exc


def _ray_error_message(error: BaseException) -> str | None:
    """The last ``Type: message`` line of a Ray error's text (an actor's creation error)."""
    for line in reversed(str(error).splitlines()):
        head, sep, rest = line.strip().partition(": ")
        if sep and head.replace(".", "").isidentifier() and head.split(".")[-1][:1].isupper() and rest:
            return f"{head.split('.')[-1]}: {rest}"
    return None
