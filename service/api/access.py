"""The caller's view of the store: a search (or architecture) of another owner is answered as
missing (404, the store's own message), so ids of others' searches do not leak. Every route that
names a search or an architecture goes through here; who sees what is decided by `Caller.sees`."""

from __future__ import annotations

from service.auth import Caller
from service.errors import NotFound
from service.store import Store
from service.store.records import ArchitectureRecord, RetrainRecord, SearchRecord


def visible_search(store: Store, caller: Caller, search_id: int) -> SearchRecord:
    """The search, if ``caller`` may see it. Raises NotFound (missing, or another owner's)."""
    record = store.get_search(search_id=search_id)
    if not caller.sees(record.owner):
        raise NotFound(f"search {search_id} not found", field="search_id")
    return record


def visible_retrain(store: Store, caller: Caller, retrain_id: int) -> RetrainRecord:
    """The retraining run, if ``caller`` may see its search. Raises NotFound (missing, or another
    owner's)."""
    record = store.get_retrain(retrain_id=retrain_id)
    if not caller.sees(store.get_search(search_id=record.search_id).owner):
        raise NotFound(f"retrain {retrain_id} not found", field="retrain_id")
    return record


def visible_architecture(store: Store, caller: Caller, architecture_id: int) -> ArchitectureRecord:
    """The architecture, if ``caller`` may see its search. Raises NotFound."""
    record = store.get_architecture(architecture_id=architecture_id)
    if caller.scoped and not caller.sees(store.get_search(search_id=record.search_id).owner):
        raise NotFound(f"architecture {architecture_id} not found", field="architecture_id")
    return record
