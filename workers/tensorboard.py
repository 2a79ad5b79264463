"""TensorBoard event files of a search, written when its spec asks (``resources.tensorboard: true``).

The files go to ``<artifact_dir>/<search_id>/tensorboard`` (``tensorboard --logdir`` on that folder,
or on ``<artifact_dir>`` for every search at once). They are written from the events the runner
publishes, so the runner needs one call: ``queue = tensorboard.follow(queue, spec, ...)`` returns a
queue that also writes each event it publishes:

- ``epoch``: every numeric epoch metric as ``search/<name>`` (the names of
  `enas_core.epoch.EpochMetrics`; step = the epoch, 0-based), and
  ``search/best_reward``;
- ``derived``: ``derive/score`` (step = the rank);
- ``retrained``: each run's curve as ``retrain/<architecture id>/<name>`` (step = its epoch, read
  from the store) and ``retrain/<architecture id>/test_score``;
- ``finished`` (or a ``requeued`` status): the files are closed.

Writing never fails a search: an error is logged and the writer turns itself off.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from service.queue import FINISHED, Queue
from service.settings import Settings
from service.store import Store

logger = logging.getLogger(__name__)

SKIPPED_CURVE_KEYS = frozenset({"epoch"})


def wants_tensorboard(spec: dict[str, Any]) -> bool:
    """Whether the resolved spec asks for TensorBoard files (``resources.tensorboard``)."""
    return bool((spec.get("resources") or {}).get("tensorboard"))


def log_dir(artifact_dir: str | None, search_id: int) -> Path | None:
    """``<artifact_dir>/<search_id>/tensorboard`` for a local artifact folder, else None."""
    if not artifact_dir:
        return None
    if "://" in artifact_dir:
        if not artifact_dir.startswith("file://"):
            return None  # an object store: tensorboardX writes local files only
        artifact_dir = artifact_dir.removeprefix("file://")
    return Path(artifact_dir) / str(search_id) / "tensorboard"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class TensorBoardLog:
    """The event files of one search (tensorboardX's ``SummaryWriter``)."""

    def __init__(self, path: Path, *, store: Store | None = None, search_id: int | None = None) -> None:
        from tensorboardX import SummaryWriter  # imported only when a spec asks for it

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.store = store
        self.search_id = search_id
        self.writer: Any = SummaryWriter(logdir=str(path), flush_secs=30)

    def on_event(self, event: dict[str, Any]) -> None:
        """Write what ``event`` carries (see the module docstring); never raises."""
        if self.writer is None:
            return
        try:
            self._write(event)
        except Exception as e:  # a full disk, a store hiccup: stop writing, keep the search going
            logger.warning("tensorboard: writing to %s failed, turned off: %s", self.path, e)
            self.close()

    def _write(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "epoch":
            step = int(event["epoch"])
            for name, value in sorted((event.get("metrics") or {}).items()):
                if (number := _number(value)) is not None:
                    self.writer.add_scalar(f"search/{name}", number, step)
            if (best := _number(event.get("best_reward"))) is not None:
                self.writer.add_scalar("search/best_reward", best, step)
        elif kind == "derived":
            for item in event.get("items") or []:
                if (score := _number(item.get("score"))) is not None:
                    self.writer.add_scalar("derive/score", score, int(item["rank"]))
        elif kind == "retrained":
            self._write_retrains()
        if kind == FINISHED or (kind == "status" and event.get("status") == "requeued"):
            self.close()
        elif self.writer is not None:
            self.writer.flush()

    def _write_retrains(self) -> None:
        if self.store is None or self.search_id is None:
            return
        for run in self.store.list_retrains(search_id=self.search_id):
            tag = f"retrain/{run.architecture_id}"
            for row in (run.metrics or {}).get("curve") or []:
                for name, value in sorted(row.items()):
                    number = _number(value)
                    if name not in SKIPPED_CURVE_KEYS and number is not None:
                        self.writer.add_scalar(f"{tag}/{name}", number, int(row.get("epoch", 0)))
            if run.test_score is not None:
                self.writer.add_scalar(f"{tag}/test_score", run.test_score, 0)

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


def follow(queue: Queue, spec: dict[str, Any], *, settings: Settings, store: Store, search_id: int) -> Queue:
    """``queue`` itself when the spec does not ask for TensorBoard files (or they cannot be
    written here), else a queue that also writes them (see the module docstring)."""
    if not wants_tensorboard(spec):
        return queue
    path = log_dir(settings.artifact_dir, search_id)
    if path is None:
        logger.warning(
            "tensorboard: artifact_dir %s is not a local folder; no event files", settings.artifact_dir
        )
        return queue
    try:
        log = TensorBoardLog(path, store=store, search_id=search_id)
    except Exception as e:  # tensorboardX missing, a read-only folder
        logger.warning("tensorboard: cannot write to %s: %s", path, e)
        return queue
    logger.info("search %s: tensorboard event files in %s", search_id, path)
    return dataclasses.replace(queue, events=queue.events.with_listener(log.on_event))
