"""The Ray driver of one search: epochs on two actors, checkpoints, derivation, retraining.

Per epoch (ENAS_SPEC sections 2-3): the shared phase (the controller samples one architecture per
minibatch, the shared model trains one minibatch on each), then the controller phase
(``steps_per_epoch`` x: sample ``archs_per_step`` -> rewards on validation minibatches -> one
REINFORCE update). In the shared phase the sample flows to the shared actor as an object ref and
the driver keeps at most two chunks in flight, so it can stop at a batch boundary; the controller
phase is one call on the controller actor, which asks the shared actor for each step's rewards.

The epoch's rows and metrics are what `enas_core.epoch.epoch_result` makes of the two phases (the
function the in-process loop uses too). After each epoch the actors' states are saved as one
checkpoint file (`workers.checkpoint`), then the rows (with their genotypes), the metrics and the
checkpoint's URI are committed with one ``store.record_epoch``, and one event is published. A run
that finds a checkpoint on its search (a resume, or a re-take after a crash) loads it into fresh
actors and continues at the next epoch: on the same hardware this reproduces exactly the rows an
uninterrupted run writes.

When an actor or its node is lost mid-search, `workers.recovery` kills what is left and runs the
search part again on fresh actors from the newest committed checkpoint (a bounded number of times
in a row).

Store writes are retried with backoff while the database is unreachable; events are best effort
(Redis down: logged, not fatal). A run whose lease was taken over, or whose fencing token is stale,
stops without writing anything more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ray.actor import ActorHandle

from enas_core.configs import ControllerTrainConfig
from enas_core.epoch import ControllerStep, EpochResult, epoch_result
from enas_core.search import derive
from service.errors import Conflict, EnasError
from service.queue import FINISHED, Queue
from service.settings import Settings
from service.store import Store
from service.store.records import DerivedRecord, SearchRecord
from workers.actors import (
    ControllerView,
    SharedView,
    create_actors,
    ensure_ray,
    kill_actors,
    samples_of,
)
from workers.checkpoint import newest_checkpoint, prune_checkpoints, save_checkpoint
from workers.config import build_plan
from workers.failures import describe_error
from workers.lease import LeaseKeeper, LeaseLost
from workers.placement import check_feasible, wait_placed
from workers.recovery import run_with_recovery
from workers.retrain import retrain_cancels, retrain_derived
from workers.search_run import (
    SearchCancelled,
    SearchClaim,
    SearchFenced,
    SearchInterrupted,
    SearchRun,
    claim_search,
)
from workers.waiting import get_checked

logger = logging.getLogger(__name__)

PHASE = "phase"
"""Event published as each phase starts: ``{"type": "phase", "phase": "shared" | "controller" |
"derive" | "retrain", "epoch": n}`` (followers see where a long epoch is)."""

TRAIN_CHUNK = 64
"""Architectures per shared-training call: the granularity of cancel checks in the shared phase."""
IN_FLIGHT = 2
"""Steps submitted ahead of the one being fetched (keeps both actors busy)."""


def run_search(
    search_id: int,
    *,
    store: Store,
    queue: Queue,
    settings: Settings,
    worker_id: str | None = None,
    stop_event: threading.Event | None = None,
    keeper: LeaseKeeper | None = None,
) -> SearchRecord:
    """Run one search to its end and return its final record.

    Marks it running (new fencing token), resumes from its newest checkpoint if it has one, runs
    the remaining epochs, derives, retrains, and finishes it ``succeeded``, ``cancelled`` (cancel
    flag seen at a batch boundary; its checkpoints are kept for a resume) or ``failed`` (any error:
    the message and a traceback are stored). Publishes a ``status`` event first and a ``finished``
    event last. A search that finished meanwhile, or that another worker took over (lease lost,
    newer fencing token), is returned as the store has it, without finishing it.

    Raises:
        SearchInterrupted: ``stop_event`` was set; the search is left ``running`` for a re-claim.
    """
    try:
        claim = claim_search(
            store, queue, settings, search_id, worker_id=worker_id, stop_event=stop_event, keeper=keeper
        )
    except Conflict:
        return store.get_search(search_id=search_id)
    claim.publish(
        {"type": "status", "status": "running", "worker": worker_id, "resume_epoch": claim.record.epoch}
    )
    status, error, trace = "succeeded", None, None
    try:
        run = SearchRun(claim, build_plan(claim.record.spec, data_root=settings.data_dir))
        ensure_ray(settings)
        check_feasible(run.plan)
        derived = search_and_derive(run)
        retrain_phase(run, derived)
    except SearchInterrupted:
        claim.publish({"type": "status", "status": "requeued", "worker": worker_id})
        raise
    except (SearchFenced, LeaseLost) as e:
        return _fenced_out(claim, e)
    except SearchCancelled:
        status = "cancelled"
    except Exception as e:  # noqa: BLE001 - every failure of a search is recorded on it
        status, (error, trace) = "failed", describe_error(e)
        logger.exception("search %s failed", search_id)
    try:
        final = claim.write(
            f"finish {status}",
            lambda: store.finish_search(
                search_id=search_id,
                status=status,
                error=error,
                traceback=trace,
                fencing_token=claim.fencing_token,
            ),
        )
    except (SearchFenced, LeaseLost) as e:
        return _fenced_out(claim, e)
    claim.publish({"type": FINISHED, "status": status, "error": error})
    return final


def _fenced_out(claim: SearchClaim, reason: BaseException) -> SearchRecord:
    """The search is another worker's now: log and return it as the store has it (or as this run
    claimed it, when the database cannot be read)."""
    try:
        current = claim.store.get_search(search_id=claim.search_id)
    except EnasError:
        current = claim.record
    logger.warning(
        "search %s: fenced out (%s); now %s, held by %s",
        claim.search_id,
        reason,
        current.status,
        current.lease_owner,
    )
    return current


def search_and_derive(run: SearchRun) -> list[DerivedRecord]:
    """Run the remaining epochs (after the checkpoint, if any) and the derivation on a fresh pair
    of actors; returns the derived rows. The actors are killed on the way out (before
    retraining, which needs their resources)."""
    run.claim.check()  # a cancel or stop that came while queued: no actors to start
    limit = run.claim.settings.actor_recoveries
    return run_with_recovery(run.claim, lambda: _search_and_derive_on_fresh_actors(run), limit=limit)


def _search_and_derive_on_fresh_actors(run: SearchRun) -> list[DerivedRecord]:
    """`search_and_derive`'s one attempt (`workers.recovery` runs it again after an actor loss)."""
    controller = shared = None
    try:
        controller, shared = create_actors(run.plan, run.claim.search_id)
        wait_placed(run.plan, controller, shared, check=run.claim.check, set_pending=run.claim.set_pending)
        ref: Any = shared.steps_per_epoch.remote()
        steps = int(get_checked(ref, run.claim.check))
        for epoch in range(restore_checkpoint(run.claim, controller, shared), run.plan.epochs):
            run_epoch(run, controller, shared, epoch, steps)
        return derive_phase(run, controller, shared)
    finally:
        kill_actors(controller, shared)


def restore_checkpoint(claim: SearchClaim, controller: ActorHandle, shared: ActorHandle) -> int:
    """Load the search's newest checkpoint into the actors; returns the first epoch to run.

    Only checkpoints of epochs the database has committed count (see `newest_checkpoint`; the row
    is read again: after an actor loss it is newer than the claim's). Without one the search
    starts at epoch 0 (replayed epochs store nothing twice).
    """
    record = claim.write("read search", lambda: claim.store.get_search(search_id=claim.search_id))
    if record.epoch is None:
        return 0
    artifact_dir = str(claim.settings.artifact_dir)
    ckpt = newest_checkpoint(artifact_dir, claim.search_id, record.checkpoint_uri, max_epoch=record.epoch)
    if ckpt is None:
        logger.warning(
            "search %s: epoch %s recorded but no checkpoint found; starting over",
            claim.search_id,
            record.epoch,
        )
        return 0
    get_checked([controller.restore.remote(ckpt.controller), shared.restore.remote(ckpt.shared)], claim.check)
    logger.info("search %s: resumed from %s (epoch %d done)", claim.search_id, ckpt.uri, ckpt.epoch)
    claim.publish({"type": "status", "status": "resumed", "epoch": ckpt.epoch, "checkpoint": ckpt.uri})
    return ckpt.epoch + 1


def _pipelined(submit: Callable[[int], Any], count: int, check: Callable[[], None]) -> list[Any]:
    """Submit ``count`` steps keeping at most IN_FLIGHT unfetched; return their results in order.

    A step is an ObjectRef.
    ``check`` runs before each submission (it raises to stop at that batch boundary).
    """
    results: list[Any] = []
    pending: deque[Any] = deque()
    for i in range(count):
        check()
        pending.append(submit(i))
        if len(pending) >= IN_FLIGHT:
            results.append(get_checked(pending.popleft(), check))
    results.extend(get_checked(p, check) for p in pending)
    return results


def run_epoch(run: SearchRun, controller: ActorHandle, shared: ActorHandle, epoch: int, steps: int) -> None:
    """One epoch on the actors: the shared phase, the controller phase, the checkpoint, then
    `publish_epoch` (rows + checkpoint URI in one transaction)."""
    claim = run.claim
    started_at, began = datetime.now(UTC), time.perf_counter()
    claim.publish({"type": PHASE, "phase": "shared", "epoch": epoch})
    train_batch, train_parts = shared_phase(claim, controller, shared, epoch, steps)
    shared_seconds = time.perf_counter() - began
    claim.publish({"type": PHASE, "phase": "controller", "epoch": epoch})
    controller_steps = controller_phase(claim, controller, shared, run.plan.controller_train)
    duration = time.perf_counter() - began
    trained = samples_of(get_checked(train_batch, claim.check))
    result = epoch_result(
        epoch, trained, train_parts, controller_steps, shared_seconds=shared_seconds, duration=duration
    )
    uri = write_checkpoint(claim, controller, shared, epoch)
    publish_epoch(run, result, started_at, checkpoint_uri=uri)
    try:
        prune_checkpoints(str(claim.settings.artifact_dir), claim.search_id, claim.settings.checkpoint_keep)
    except OSError as e:
        logger.warning("search %s: old checkpoints not pruned (%s)", claim.search_id, e)


def write_checkpoint(claim: SearchClaim, controller: ActorHandle, shared: ActorHandle, epoch: int) -> str:
    """Save both actors' states after ``epoch``; returns the checkpoint's URI."""
    blobs: list[bytes] = get_checked(
        [controller.checkpoint.remote(), shared.checkpoint.remote()], claim.check
    )
    return save_checkpoint(str(claim.settings.artifact_dir), claim.search_id, epoch, blobs[0], blobs[1])


def shared_phase(
    claim: SearchClaim, controller: ActorHandle, shared: ActorHandle, epoch: int, steps: int
) -> tuple[Any, list[dict[str, Any]]]:
    """Sample ``steps`` architectures and train one minibatch on each, in chunks of TRAIN_CHUNK
    (``claim.check`` before each chunk).

    Returns the sampled batch's ObjectRef and the training metrics of each chunk."""
    train_batch: Any = controller.sample.remote(steps)

    def train_chunk(i: int) -> Any:
        return shared.train.remote(train_batch, epoch, i * TRAIN_CHUNK, (i + 1) * TRAIN_CHUNK)

    return train_batch, _pipelined(train_chunk, -(-steps // TRAIN_CHUNK), claim.check)


def controller_phase(
    claim: SearchClaim, controller: ActorHandle, shared: ActorHandle, ctrl: ControllerTrainConfig
) -> list[ControllerStep]:
    """``ctrl.steps_per_epoch`` x (sample ``ctrl.archs_per_step`` -> rewards -> one update), run
    by the controller actor in one call (`ControllerActor.train_policy`, asking the shared actor
    for the rewards itself). A cancel or stop is seen while the call runs (`get_checked`); the
    runner then kills the actors, which ends the call."""
    claim.check()
    ref: Any = controller.train_policy.remote(shared, ctrl.steps_per_epoch, ctrl.archs_per_step)
    return list(get_checked(ref, claim.check))


def architecture_rows(run: SearchRun, result: EpochResult) -> list[dict[str, Any]]:
    """The store's ``architectures`` rows of an epoch: each architecture with its genotype and hash."""
    rows = []
    for arch in result.architectures:
        genotype, digest = run.genotype(arch.tokens)
        rows.append({**arch.row(), "genotype": genotype, "hash": digest})
    return rows


def publish_epoch(
    run: SearchRun, result: EpochResult, started_at: datetime, checkpoint_uri: str | None = None
) -> None:
    """Commit the epoch (one `record_epoch`: rows, metrics, checkpoint URI), publish its event, log.

    Raises SearchCancelled when the store reports a cancel request (the database's flag).
    """
    claim, epoch, metrics = run.claim, result.epoch, result.metrics
    rows = architecture_rows(run, result)
    record = claim.write(
        f"record epoch {epoch}",
        lambda: claim.store.record_epoch(
            search_id=claim.search_id,
            epoch=epoch,
            metrics=dict(metrics),
            architectures=rows,
            checkpoint_uri=checkpoint_uri,
            started_at=started_at,
            duration_s=metrics["duration_s"],
            fencing_token=claim.fencing_token,
        ),
    )
    event = {"type": "epoch", "epoch": epoch, "total": run.plan.epochs, "metrics": metrics}
    claim.publish({**event, "best_reward": record.best_reward})
    logger.info(
        "search %s: epoch %d/%d reward %.4f (%.1fs)",
        claim.search_id,
        epoch + 1,
        run.plan.epochs,
        metrics.get("reward_mean") or 0.0,
        metrics["duration_s"] or 0.0,
    )
    if record.cancel_requested:
        raise SearchCancelled(f"search {claim.search_id}: cancel requested")


def derive_phase(run: SearchRun, controller: ActorHandle, shared: ActorHandle) -> list[DerivedRecord]:
    """Sample ``derive.num_samples`` architectures, keep the best ``derive.top_k`` distinct ones
    by their score on one validation minibatch (`enas_core.search.derive`), store them."""
    claim, plan = run.claim, run.plan
    claim.check()
    claim.publish({"type": PHASE, "phase": "derive", "epoch": plan.epochs - 1})
    ranked = derive(
        SharedView(shared, claim.check),
        ControllerView(controller, run.space, claim.check),
        plan.derive_num_samples,
        plan.derive_top_k,
    )
    items = []
    for tokens, score in ranked:
        genotype, digest = run.genotype(tokens)
        items.append({"tokens": list(tokens), "genotype": genotype, "hash": digest, "score": score})
    derived = claim.write(
        "record derived",
        lambda: claim.store.record_derived(search_id=claim.search_id, items=items, epoch=plan.epochs - 1),
    )
    summary = [{"rank": d.rank, "architecture_id": d.architecture_id, "score": d.score} for d in derived]
    claim.publish({"type": "derived", "items": summary})
    return derived


def retrain_phase(run: SearchRun, derived: Sequence[DerivedRecord]) -> None:
    """Retrain the best ``retrain.top_k`` derived architectures as Ray tasks (when enabled).

    Raises SearchCancelled / SearchInterrupted when a cancel or a stop came while they ran.
    """
    claim, plan = run.claim, run.plan
    if not plan.retrain_enabled or plan.retrain_top_k <= 0:
        return
    claim.publish({"type": PHASE, "phase": "retrain", "epoch": plan.epochs - 1})
    results = retrain_derived(
        claim.store,
        claim.search_id,
        plan,
        list(derived)[: plan.retrain_top_k],
        claim.check,
        max_retries=claim.settings.retrain_max_retries,
        artifact_dir=str(claim.settings.artifact_dir),
        cancelled=retrain_cancels(claim.queue),
    )
    claim.publish({"type": "retrained", "items": results})
