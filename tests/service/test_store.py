"""The Store contract, run against SQLite (temp file) and PostgreSQL (own schema)."""

from __future__ import annotations

import base64
import math
import pickle
import threading
from typing import Any

import pytest

from service.errors import Conflict, InvalidInput, NotFound
from service.store import BaseStore, SearchRecord, Store

SPEC: dict[str, Any] = {"space": "micro", "dataset": "digits", "epochs": 3, "seed": 7, "name": "t"}


def arch(phase: str, index: int, reward: float | None = None, **extra: Any) -> dict[str, Any]:
    """An architecture dict as a worker passes it to ``Store.record_epoch``."""
    tokens = [index % 3, 1, 0, 2]
    return {
        "phase": phase,
        "index": index,
        "tokens": tokens,
        "hash": f"{index:016x}",
        "genotype": {"version": 1, "space": "micro", "params": {}, "tokens": tokens},
        "reward": reward,
        **extra,
    }


def new_search(store: Store, **spec: object) -> SearchRecord:
    return store.create_search(spec={**SPEC, **spec}, owner="alice")


def test_create_and_get(store: Store) -> None:
    created = new_search(store)
    got = store.get_search(search_id=created.id)
    assert got == created
    assert (got.status, got.owner, got.seed, got.total_epochs, got.epoch) == ("queued", "alice", 7, 3, None)
    assert got.spec == SPEC and got.name == "t" and got.progress == 0.0
    assert got.created_at.tzinfo is not None and got.to_dict()["created_at"].endswith("Z")
    with pytest.raises(NotFound):
        store.get_search(search_id=created.id + 100)
    with pytest.raises(InvalidInput) as e:
        store.create_search(spec={"space": "micro"}, owner="x")
    assert e.value.field == "epochs"


def test_list_newest_first_with_cursor(store: Store) -> None:
    ids = [new_search(store).id for _ in range(5)]
    store.mark_running(search_id=ids[1])
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.list_searches(limit=2, cursor=cursor)
        seen += [r.id for r in page]
        pages += 1
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    running, _ = store.list_searches(status="running")
    assert [r.id for r in running] == [ids[1]]
    assert store.counts_by_status() == {
        "queued": 4,
        "running": 1,
        "pending": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    forged = base64.urlsafe_b64encode(b'["x"]').decode()
    for bad in ({"status": "nope"}, {"cursor": "garbage!"}, {"cursor": forged}, {"limit": 0}):
        with pytest.raises(InvalidInput):
            store.list_searches(**bad)  # type: ignore[arg-type]


def test_lifecycle_and_fencing(store: Store) -> None:
    sid = new_search(store).id
    first = store.mark_running(search_id=sid, worker_id="w1")
    again = store.mark_running(search_id=sid, worker_id="w2")  # re-claimed after a lost lease
    assert (first.status, first.lease_owner, again.lease_owner) == ("running", "w1", "w2")
    assert again.fencing_token == first.fencing_token + 1 and again.started_at == first.started_at
    with pytest.raises(Conflict):
        store.record_epoch(
            search_id=sid, epoch=0, metrics={}, architectures=[], fencing_token=first.fencing_token
        )
    with pytest.raises(Conflict):
        store.finish_search(search_id=sid, status="succeeded", fencing_token=first.fencing_token)
    done = store.finish_search(search_id=sid, status="succeeded", fencing_token=again.fencing_token)
    assert (done.status, done.progress, done.lease_owner) == ("succeeded", 1.0, None) and done.finished_at
    assert store.finish_search(search_id=sid, status="succeeded") == done  # idempotent
    with pytest.raises(Conflict):
        store.finish_search(search_id=sid, status="failed")
    with pytest.raises(Conflict):
        store.mark_running(search_id=sid)
    with pytest.raises(InvalidInput):
        store.finish_search(search_id=sid, status="running")


def test_failure_keeps_error_and_traceback(store: Store) -> None:
    sid = new_search(store).id
    store.mark_running(search_id=sid)
    failed = store.finish_search(search_id=sid, status="failed", error="boom", traceback="Traceback ...")
    assert (failed.error, failed.error_traceback) == ("boom", "Traceback ...")
    queued = store.requeue_search(search_id=sid)
    assert (queued.status, queued.error, queued.finished_at) == ("queued", None, None)


def test_cancel(store: Store) -> None:
    queued = new_search(store).id
    assert store.request_cancel(search_id=queued).status == "cancelled"
    assert store.request_cancel(search_id=queued).status == "cancelled"  # idempotent
    running = new_search(store).id
    store.mark_running(search_id=running)
    record = store.request_cancel(search_id=running)
    assert (record.status, record.cancel_requested) == ("running", True)
    assert store.record_epoch(search_id=running, epoch=0, metrics={}, architectures=[]).cancel_requested
    store.finish_search(search_id=running, status="cancelled")
    assert store.requeue_search(search_id=running).cancel_requested is False
    done = new_search(store).id
    store.mark_running(search_id=done)
    store.finish_search(search_id=done, status="succeeded")
    with pytest.raises(Conflict):
        store.request_cancel(search_id=done)
    with pytest.raises(Conflict):
        store.requeue_search(search_id=done)


def test_record_epoch_and_idempotent_replay(store: Store) -> None:
    sid = new_search(store).id
    store.mark_running(search_id=sid)
    archs = [arch("train", i, loss=1.5, accuracy=0.5) for i in range(3)]
    archs += [arch("sample", i, reward=r, entropy=2.0, log_prob=-3.0) for i, r in enumerate([0.2, 0.9, 0.5])]
    metrics = {"reward_mean": 0.53, "loss": float("nan"), "images_per_s": 100}
    for _ in range(2):  # the replay of an epoch after a restart writes nothing twice
        record = store.record_epoch(
            search_id=sid,
            epoch=0,
            metrics=metrics,
            architectures=archs,
            checkpoint_uri="file:///ck/0",
            duration_s=1.5,
        )
    rows, _ = store.list_architectures(search_id=sid, limit=1000)
    assert len(rows) == 6 and len(store.list_epochs(search_id=sid)) == 1
    best = store.get_architecture(architecture_id=record.best_architecture_id)  # type: ignore[arg-type]
    assert (best.phase, best.index, best.reward, record.best_reward) == ("sample", 1, 0.9, 0.9)
    assert (record.epoch, record.checkpoint_uri) == (0, "file:///ck/0")
    assert math.isclose(record.progress, 1 / 3)
    epoch = store.list_epochs(search_id=sid)[0]
    assert (
        epoch.metrics == {"reward_mean": 0.53, "loss": None, "images_per_s": 100} and epoch.duration_s == 1.5
    )
    later = store.record_epoch(
        search_id=sid, epoch=1, metrics={}, architectures=[arch("sample", 0, reward=0.1)]
    )
    assert (later.epoch, later.best_reward, later.best_architecture_id) == (
        1,
        0.9,
        record.best_architecture_id,
    )
    with pytest.raises(InvalidInput) as e:
        store.record_epoch(search_id=sid, epoch=3, metrics={}, architectures=[])
    assert e.value.field == "epoch"
    with pytest.raises(InvalidInput) as e:
        store.record_epoch(
            search_id=sid, epoch=2, metrics={}, architectures=[{**arch("sample", 0), "tokens": "x"}]
        )
    assert e.value.field == "tokens"
    with pytest.raises(NotFound):
        store.record_epoch(search_id=sid + 99, epoch=0, metrics={}, architectures=[])


def test_a_bad_row_late_in_an_epoch_saves_nothing_of_it(store: Store) -> None:
    """Rows are validated while they stream into the database: a bad one after 500 good ones
    aborts the whole epoch, names the row, and leaves the connection usable."""
    sid = new_search(store).id
    store.mark_running(search_id=sid)
    good = [arch("sample", i, reward=0.5) for i in range(500)]
    for bad, field in [
        ({"reward": "high"}, "reward"),
        ({"tokens": [1, "x"]}, "tokens"),
        ({"index": -1}, "index"),
    ]:
        with pytest.raises(InvalidInput) as e:
            store.record_epoch(search_id=sid, epoch=0, metrics={}, architectures=[*good, {**good[0], **bad}])
        assert e.value.field == field and "architectures[500]" in e.value.message
    assert store.list_architectures(search_id=sid)[0] == [] and store.list_epochs(search_id=sid) == []
    assert store.get_search(search_id=sid).epoch is None
    record = store.record_epoch(search_id=sid, epoch=0, metrics={}, architectures=good)
    assert record.epoch == 0 and len(store.list_architectures(search_id=sid, limit=1000)[0]) == 500
    nan = {**arch("train", 0), "loss": float("nan"), "genotype": {"x": float("inf"), "t": (1, 2)}}
    store.record_epoch(search_id=sid, epoch=1, metrics={}, architectures=[nan, {**nan, "loss": 3.0}])
    (row,), _ = store.list_architectures(search_id=sid, epoch=1)
    assert row.loss is None and row.genotype == {"x": None, "t": [1, 2]}  # first of a slot kept


def test_bulk_insert_1000_and_reward_order_pagination(store: Store) -> None:
    sid = new_search(store).id
    store.mark_running(search_id=sid)
    rewards = [None if i % 10 == 0 else (i * 37 % 101) / 100 for i in range(1000)]
    archs = [arch("sample", i, reward=r) for i, r in enumerate(rewards)]
    store.record_epoch(search_id=sid, epoch=0, metrics={}, architectures=archs)
    seen, cursor = [], None
    while True:
        page, cursor = store.list_architectures(search_id=sid, order="reward", limit=300, cursor=cursor)
        seen += page
        if cursor is None:
            break
    assert len(seen) == 1000 and len({a.id for a in seen}) == 1000
    got = [a.reward for a in seen]
    rated = [r for r in got if r is not None]
    assert rated == sorted(rated, reverse=True) and got[len(rated) :] == [None] * 100
    by_index, _ = store.list_architectures(search_id=sid, limit=5)
    assert [a.index for a in by_index] == [0, 1, 2, 3, 4] and by_index[0].tokens == [0, 1, 0, 2]
    assert store.list_architectures(search_id=sid, epoch=1)[0] == []
    assert len(store.list_architectures(search_id=sid, phase="sample", limit=1000)[0]) == 1000
    with pytest.raises(InvalidInput):
        store.list_architectures(search_id=sid, order="size")


def test_derived_and_retrains(store: Store) -> None:
    sid = new_search(store).id
    store.mark_running(search_id=sid)
    store.record_epoch(search_id=sid, epoch=2, metrics={}, architectures=[arch("sample", 0, reward=0.3)])
    items = [
        {"tokens": [1, 2], "hash": "aa", "genotype": {"space": "micro"}, "score": 0.8},
        {"tokens": [3, 4], "hash": "bb", "genotype": {"space": "micro"}, "score": 0.7},
    ]
    derived = store.record_derived(search_id=sid, items=items)
    assert store.record_derived(search_id=sid, items=items) == derived  # idempotent
    assert [(d.rank, d.score, d.architecture.hash, d.architecture.phase) for d in derived] == [
        (1, 0.8, "aa", "derive"),
        (2, 0.7, "bb", "derive"),
    ]
    assert derived[0].architecture.epoch == 2 and derived[0].to_dict()["architecture"]["tokens"] == [1, 2]
    retrain = store.create_retrain(search_id=sid, architecture_id=derived[0].architecture_id)
    assert store.create_retrain(search_id=sid, architecture_id=derived[0].architecture_id) == retrain
    running = store.update_retrain(retrain_id=retrain.id, status="running", metrics={"test": [0.5]})
    assert (running.status, running.metrics) == ("running", {"test": [0.5]})
    done = store.finish_retrain(
        retrain_id=retrain.id,
        status="succeeded",
        params=12345,
        flops=None,
        metrics={"train_loss": [2.0, 1.0]},
        test_score=0.97,
        artifact_uri="file:///m",
    )
    assert (done.status, done.params, done.test_score, done.artifact_uri) == (
        "succeeded",
        12345,
        0.97,
        "file:///m",
    )
    assert done.finished_at is not None and store.list_retrains(search_id=sid) == [done]
    with pytest.raises(Conflict):
        store.finish_retrain(retrain_id=retrain.id, status="failed", error="late")
    other = new_search(store).id
    with pytest.raises(NotFound):
        store.create_retrain(search_id=other, architecture_id=derived[0].architecture_id)
    with pytest.raises(NotFound):
        store.get_retrain(retrain_id=retrain.id + 50)


def test_pickles_as_url_only(store: Store) -> None:
    sid = new_search(store).id
    clone = pickle.loads(pickle.dumps(store))
    assert clone.get_search(search_id=sid).id == sid and clone.engine is not store.engine
    clone.dispose()


def test_concurrent_writers(store: Store) -> None:
    """Two threads (a worker recording epochs, the API submitting) never hit 'database is locked'."""
    sid = new_search(store, epochs=40).id
    store.mark_running(search_id=sid)
    errors: list[BaseException] = []

    def run(fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def worker() -> None:
        for e in range(40):
            store.record_epoch(
                search_id=sid, epoch=e, metrics={}, architectures=[arch("sample", i) for i in range(20)]
            )

    def api() -> None:
        for _ in range(40):
            new_search(store)
            store.list_searches(limit=5)

    threads = [threading.Thread(target=run, args=(f,)) for f in (worker, api)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get_search(search_id=sid).epoch == 39


def test_the_store_is_the_contract_and_only_the_contract() -> None:
    """Every public operation of `Store` is declared (and documented) on `BaseStore`; `Store`
    implements all of them. Its one extra is the SQL engine (migrations, /metrics, tests)."""
    contract = {
        name for name, value in vars(BaseStore).items() if getattr(value, "__isabstractmethod__", False)
    }
    assert not Store.__abstractmethods__
    assert all(getattr(BaseStore, name).__doc__ for name in contract)
    assert {name for name in dir(Store) if not name.startswith("_")} == contract | {"engine"}
