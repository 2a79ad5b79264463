"""``GET /metrics``: the service's state in the Prometheus text format (version 0.0.4).

Everything is read from the database and Redis at scrape time, so any API replica answers the
same and nothing is lost when a process restarts:

- ``enas_searches{status}``: searches by status (gauge);
- ``enas_queue_depth``: search ids waiting in the job queue, and ``enas_redis_up`` (gauges);
- ``enas_architectures_sampled_total{phase}``: architectures recorded (counter; ``rate()`` of it is
  the architectures sampled per second across all searches);
- ``enas_epoch_duration_seconds``: a summary of epoch durations: ``_sum`` and ``_count`` over every
  recorded epoch, quantiles over the most recent ``RECENT_EPOCHS``;
- per running search (labels ``search_id``, ``space``, ``dataset``), from its last epoch's
  metrics (`enas_core.epoch.EpochMetrics`):
  ``enas_search_progress``, ``enas_search_epoch``, ``enas_search_reward{stat="mean"|"max"}``,
  ``enas_search_best_reward``, ``enas_search_entropy``, ``enas_search_baseline``,
  ``enas_search_architectures_per_second`` and ``enas_search_epoch_duration_seconds``.

The database being down answers 503 (the scrape fails, as it should); Redis being down only
drops the queue depth and sets ``enas_redis_up`` to 0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from enas_core.epoch import EpochMetrics
from service.api.deps import StoreDep, connect_queue
from service.api.responses import errors
from service.store import Store
from service.store.db import translate
from service.store.models import SEARCH_STATUSES, Architecture, Epoch, Search

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECENT_EPOCHS = 200
QUANTILES = (0.5, 0.9, 0.99)
MAX_RUNNING = 500
"""At most this many running searches get per-search series (newest first)."""

Labels = Mapping[str, str]


@dataclass
class Family:
    """One metric family: its samples are ``(name suffix, labels, value)``."""

    name: str
    kind: str  # gauge | counter | summary
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float | None, labels: Labels | None = None, suffix: str = "") -> None:
        """Add a sample; a missing value is left out (Prometheus has no null)."""
        if value is not None and not isinstance(value, bool):
            self.samples.append((suffix, labels or {}, float(value)))


def _escape(value: str, *, quotes: bool = True) -> str:
    """Backslashes and newlines escaped (HELP text), and double quotes too (label values)."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
    return escaped.replace('"', '\\"') if quotes else escaped


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def render(families: Iterable[Family]) -> str:
    """The exposition text of ``families`` (``# HELP``, ``# TYPE``, then one line per sample)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape(family.help, quotes=False)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            lines.append(f"{family.name}{suffix}{'{' + text + '}' if text else ''} {_number(value)}")
    return "\n".join(lines) + "\n"


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (linear interpolation)."""
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _database_families(session: Session) -> list[Family]:
    searches = Family("enas_searches", "gauge", "Searches by status.")
    counts = dict(session.execute(select(Search.status, func.count()).group_by(Search.status)).all())
    for status in SEARCH_STATUSES:
        searches.add(counts.get(status, 0), {"status": status})

    sampled = Family(
        "enas_architectures_sampled_total",
        "counter",
        "Architectures recorded, by phase (rate() gives architectures per second).",
    )
    rows = dict(session.execute(select(Architecture.phase, func.count()).group_by(Architecture.phase)).all())
    for phase in ("train", "sample", "derive"):
        sampled.add(rows.get(phase, 0), {"phase": phase})

    text = f"Search epoch durations: sum and count of all, quantiles of the last {RECENT_EPOCHS}."
    durations = Family("enas_epoch_duration_seconds", "summary", text)
    recent_query = select(Epoch.duration_s).where(Epoch.duration_s.is_not(None))
    latest = session.scalars(recent_query.order_by(Epoch.id.desc()).limit(RECENT_EPOCHS))
    recent = sorted(float(d) for d in latest if d is not None)
    for q in QUANTILES if recent else ():
        durations.add(_quantile(recent, q), {"quantile": str(q)})
    count, total = session.execute(select(func.count(Epoch.duration_s), func.sum(Epoch.duration_s))).one()
    durations.add(total or 0.0, suffix="_sum")
    durations.add(count or 0, suffix="_count")
    return [searches, sampled, durations, *_running_families(session)]


RUNNING_SERIES = (
    ("enas_search_progress", "Fraction of the search's epochs done."),
    ("enas_search_epoch", "Last finished epoch (0-based)."),
    ("enas_search_reward", "Reward of the last epoch's sampled architectures (stat: mean or max)."),
    ("enas_search_best_reward", "Best reward seen so far."),
    ("enas_search_entropy", "Mean controller entropy in the last epoch."),
    ("enas_search_baseline", "The controller's reward baseline after the last epoch."),
    ("enas_search_architectures_per_second", "Architectures trained or sampled per second, last epoch."),
    ("enas_search_epoch_duration_seconds", "Duration of the last epoch."),
)


def _running_families(session: Session) -> list[Family]:
    """Gauges of the running searches, from each one's row and its last epoch."""
    families = {name: Family(name, "gauge", text) for name, text in RUNNING_SERIES}
    running = list(
        session.scalars(
            select(Search)
            .where(Search.status.in_(("running", "pending")))
            .order_by(Search.id.desc())
            .limit(MAX_RUNNING)
        )
    )
    last = {search.id: search.epoch for search in running if search.epoch is not None}
    epochs: dict[int, EpochMetrics] = {}
    if last:
        wanted = or_(*(and_(Epoch.search_id == sid, Epoch.epoch == epoch) for sid, epoch in last.items()))
        for search_id, stored in session.execute(select(Epoch.search_id, Epoch.metrics).where(wanted)):
            epochs[search_id] = cast(EpochMetrics, dict(stored or {}))
    for search in running:
        labels = {
            "search_id": str(search.id),
            "space": str(search.spec.get("space", "")),
            "dataset": str(search.spec.get("dataset", "")),
        }
        metrics = epochs.get(search.id, EpochMetrics())
        families["enas_search_progress"].add(search.progress, labels)
        families["enas_search_epoch"].add(search.epoch, labels)
        families["enas_search_reward"].add(metrics.get("reward_mean"), {**labels, "stat": "mean"})
        families["enas_search_reward"].add(metrics.get("reward_max"), {**labels, "stat": "max"})
        families["enas_search_best_reward"].add(search.best_reward, labels)
        families["enas_search_entropy"].add(metrics.get("entropy"), labels)
        families["enas_search_baseline"].add(metrics.get("baseline"), labels)
        families["enas_search_architectures_per_second"].add(metrics.get("archs_per_s"), labels)
        families["enas_search_epoch_duration_seconds"].add(metrics.get("duration_s"), labels)
    return list(families.values())


def database_families(store: Store) -> list[Family]:
    """The families read from the database, in one read-only transaction.

    Raises:
        service.errors.Unavailable: the database cannot be reached.
    """
    try:
        with Session(store.engine) as session, session.begin():
            return _database_families(session)
    except SQLAlchemyError as e:
        raise translate(e) from e


def queue_families(state: Any) -> list[Family]:
    """``enas_redis_up`` and, when Redis answers, ``enas_queue_depth``."""
    up = Family("enas_redis_up", "gauge", "1 when Redis answered this scrape, else 0.")
    depth = Family("enas_queue_depth", "gauge", "Search ids waiting in the job queue.")
    try:
        depth.add(connect_queue(state).jobs.depth())
        up.add(1)
    except Exception as e:  # Redis down or unreachable: report it, do not fail the scrape
        logger.warning("metrics: Redis unavailable: %s", e)
        up.add(0)
    return [up, depth]


@router.get(
    "/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}, **errors(503)}
)
def metrics(request: Request, store: StoreDep) -> Response:
    """The service's metrics in the Prometheus text format."""
    families = database_families(store) + queue_families(request.app.state)
    return Response(render(families), media_type=CONTENT_TYPE)
