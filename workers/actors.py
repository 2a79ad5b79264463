"""The two Ray actors of a search: the controller (policy) and the shared model (weights omega).

The classes are plain Python (usable and testable in-process); `create_actors` wraps them with
``ray.remote`` and the search's resources. Everything crossing the actor boundary is plain data:
a sampled batch is ``{"tokens": [[int]], "log_prob": [float], "entropy": [float]}``; methods that
take architectures accept such a batch (or an ObjectRef to one: Ray resolves it, so a sample can
flow from one actor to the other without a round trip through the driver) or a list of token lists.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.actor import ActorHandle

from enas_core.controller_trainer import ControllerTrainer
from enas_core.epoch import ControllerStep, Sampled
from enas_core.registry import make_shared_trainer
from enas_core.runtime import resolve_device
from enas_core.spaces import Space
from service.settings import Settings
from workers.checkpoint import state_bytes, state_from_bytes
from workers.config import SearchPlan
from workers.waiting import get_checked

logger = logging.getLogger(__name__)

Batch = Mapping[str, Any] | Sequence[Sequence[int]]


def samples_of(batch: Mapping[str, list[Any]]) -> list[Sampled]:
    """The architectures of a sampled batch (`ControllerActor.sample`'s columns), in order."""
    rows = zip(batch["tokens"], batch["log_prob"], batch["entropy"], strict=True)
    return [Sampled(list(t), float(lp), float(e)) for t, lp, e in rows]


def tokens_of(batch: Batch) -> list[list[int]]:
    """The token lists of a sampled batch (or of a plain list of token lists)."""
    if isinstance(batch, Mapping):
        return [list(t) for t in batch["tokens"]]
    return [list(t) for t in batch]


class ControllerActor:
    """Wraps `enas_core.controller_trainer.ControllerTrainer` (the LSTM policy, Adam, baseline, sampler RNG).

    Runs on the CPU: sampling is a chain of tiny steps, faster on the host than on a GPU.
    """

    def __init__(self, plan: SearchPlan) -> None:
        self.trainer = ControllerTrainer(plan.space(), plan.controller, plan.controller_train, plan.seed)

    def sample(self, n: int) -> dict[str, list[Any]]:
        """``n`` architectures from the current policy, as plain lists (one batched draw)."""
        drawn = self.trainer.sample(n)
        return {
            "tokens": [list(s.tokens) for s in drawn],
            "log_prob": [float(s.log_prob) for s in drawn],
            "entropy": [float(s.entropy) for s in drawn],
        }

    def train_policy(self, shared: ActorHandle, steps: int, archs_per_step: int) -> list[ControllerStep]:
        """The controller phase of one epoch in one call: ``steps`` x (sample ``archs_per_step``
        -> their rewards from the ``shared`` actor -> one REINFORCE update). Returns the steps
        (`enas_core.epoch.ControllerStep`).

        The rewards come straight from the shared actor (one actor-to-actor call per step), so the
        driver makes one call per phase instead of three per step: on a small epoch those round
        trips through the driver were most of Ray's overhead over the in-process loop. While the
        shared actor computes the rewards, this actor runs the reward-free half of the update (the
        policy's pass over the samples), so the two processes overlap. Same steps, same numbers,
        same order of random draws as the in-process loop (bench/RESULTS.md, tests/workers).
        """
        out: list[ControllerStep] = []
        for _ in range(steps):
            drawn = self.trainer.sample(archs_per_step)
            tokens = [list(s.tokens) for s in drawn]
            pending: Any = shared.rewards.remote(tokens)
            forward = self.trainer.forward(tokens)
            got: list[float] = ray.get(pending)
            rewards = [float(r) for r in got]
            out.append(ControllerStep(drawn, rewards, self.trainer.apply_update(forward, rewards)))
        return out

    def state_dict(self) -> dict[str, Any]:
        """Policy, optimizer, baseline and sampler state (CPU tensors; for checkpoints)."""
        return self.trainer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_state_dict(state)

    def checkpoint(self) -> bytes:
        """The trainer's whole state as ``torch.save`` bytes (a copy: later steps do not change it)."""
        return state_bytes(self.trainer.state_dict())

    def restore(self, blob: bytes) -> None:
        """Load a state made by `checkpoint` (this or an earlier process's)."""
        self.trainer.load_state_dict(state_from_bytes(blob))


class SharedModelActor:
    """Wraps the shared trainer of the space (`enas_core.registry.make_shared_trainer`).

    Loads its dataset itself (by name, folder and seed) and keeps it on its device, so no tensor
    ever travels through the object store.
    Raises (at creation): the dataset's loading errors, e.g. a missing data folder.
    """

    def __init__(self, plan: SearchPlan) -> None:
        self.device = str(resolve_device(plan.resources.device))
        data = plan.dataset.load()
        self.trainer = make_shared_trainer(plan.space(), plan.child, data, plan.seed, self.device)

    def steps_per_epoch(self) -> int:
        """How many architectures (minibatches) one epoch of the shared phase trains."""
        return int(self.trainer.steps_per_epoch())

    def train(self, batch: Batch, epoch: int, start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """Train one minibatch per architecture of ``batch[start:stop]`` (ENAS's M=1).

        Calling it on consecutive slices is the same as one call on the whole batch (the data
        stream and the RNG continue). Returns the trainer's metrics (``loss``, ``accuracy`` or
        ``perplexity``, ``lr``, ``images_per_s``, ``per_arch``) plus ``seconds``.
        """
        tokens = tokens_of(batch)[start:stop]
        began = time.perf_counter()
        metrics = dict(self.trainer.train(tokens, epoch))
        metrics["seconds"] = time.perf_counter() - began
        return metrics

    def rewards(self, batch: Batch) -> list[float]:
        """The reward of each architecture of ``batch``, each on its own validation minibatch."""
        return [float(r) for r in self.trainer.rewards(tokens_of(batch))]

    def state_dict(self) -> dict[str, Any]:
        """Shared weights, optimizer, data streams and RNG state (for checkpoints)."""
        return self.trainer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_state_dict(state)

    def checkpoint(self) -> bytes:
        """Weights, optimizer, data streams and RNG states as ``torch.save`` bytes (a deep copy:
        the live tensors keep training, the checkpoint must not)."""
        return state_bytes(self.trainer.state_dict())

    def restore(self, blob: bytes) -> None:
        """Load a state made by `checkpoint`; tensors go to this actor's device."""
        self.trainer.load_state_dict(state_from_bytes(blob))


@dataclass(frozen=True)
class ControllerView:
    """The driver's in-process view of a controller actor, shaped like `ControllerTrainer` where
    `enas_core.search.derive` needs it (a `PolicySampler`); each call is a round trip."""

    actor: ActorHandle
    space: Space
    check: Callable[[], None] | None = None  # run while waiting (a cancel or stop raises)

    def sample(self, n: int) -> list[Sampled]:
        ref: Any = self.actor.sample.remote(n)
        return samples_of(get_checked(ref, self.check))


@dataclass(frozen=True)
class SharedView:
    """The driver's in-process view of a shared-model actor for `derive` (a `RewardScorer`)."""

    actor: ActorHandle
    check: Callable[[], None] | None = None  # run while waiting (a cancel or stop raises)

    def rewards(self, tokens: list[list[int]]) -> list[float]:
        return list(get_checked(self.actor.rewards.remote(tokens), self.check))


class ClusterUnreachable(RuntimeError):
    """The worker cannot attach to the Ray cluster at its address (raised within `ATTACH_TIMEOUT_S`)."""


ATTACH_TIMEOUT_S = 15.0


def ensure_ray(settings: Settings, *, timeout_s: float = ATTACH_TIMEOUT_S) -> None:
    """Connect to ``settings.ray_address``, or start a local Ray, unless already connected.

    ``HOST:PORT`` is first probed over TCP, ``auto`` needs a Ray node on this host; either way the
    attach gives up after ``timeout_s`` instead of hanging.

    Raises:
        ClusterUnreachable: the address does not answer or ``ray.init`` did not return in time.
    """
    if ray.is_initialized():
        return
    address = settings.ray_address
    if address is None:
        # "local": always a new Ray of this process, never a cluster that `ray start` left recorded
        # in /tmp/ray (a plain ray.init() would attach to it).
        ray.init(address="local", include_dashboard=False, num_cpus=settings.ray_num_cpus)
        return
    _probe(address, timeout_s)
    failure: list[BaseException] = []

    def attach() -> None:
        try:
            ray.init(address=address, ignore_reinit_error=True)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(e)

    thread = threading.Thread(target=attach, name="ray-attach", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ClusterUnreachable(
            f"cannot attach to the Ray cluster at {address!r}: no answer in {timeout_s:g} s"
        )
    if failure:
        raise ClusterUnreachable(
            f"cannot attach to the Ray cluster at {address!r}: {failure[0]}"
        ) from failure[0]


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast when ``address`` names no local Ray node (``auto``) or no open TCP port."""
    if address == "auto":
        if not (
            os.environ.get("RAY_ADDRESS")
            or Path(tempfile.gettempdir(), "ray", "ray_current_cluster").exists()
        ):
            raise ClusterUnreachable(
                "cannot attach to the Ray cluster at 'auto': no Ray node runs on this host "
                "(join it first with `ray start --address=HEAD:6379`)"
            )
        return
    if address.startswith("ray://"):
        return  # Ray Client: ray.init's own timeout applies
    try:
        connect_tcp(address, min(timeout_s, 5.0))
    except (OSError, ValueError) as e:
        raise ClusterUnreachable(f"cannot attach to the Ray cluster at {address!r}: {e}") from e


def connect_tcp(address: str, timeout_s: float) -> None:
    """Open and close a TCP connection to ``host:port`` (no host: 127.0.0.1).

    Raises OSError (refused, unreachable, timed out) or ValueError (no port number)."""
    host, _, port = address.rpartition(":")
    socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()


def create_actors(plan: SearchPlan, search_id: int) -> tuple[ActorHandle, ActorHandle]:
    """Start ``(controller, shared)`` actors for a search on the connected Ray cluster.

    The shared model gets the spec's ``num_cpus`` and ``num_gpus`` (fractional GPUs allowed);
    the controller the same CPUs and no GPU; each also its custom resources
    (``resources.shared`` / ``resources.controller``). Both are named after the search for the
    dashboard.
    """
    controller: Any = (
        ray.remote(ControllerActor)
        .options(**plan.resources.controller_options(), name=f"search-{search_id}-controller-{_suffix()}")
        .remote(plan)
    )
    shared: Any = (
        ray.remote(SharedModelActor)
        .options(**plan.resources.shared_options(), name=f"search-{search_id}-shared-{_suffix()}")
        .remote(plan)
    )
    return controller, shared


def kill_actors(*actors: ActorHandle | None) -> None:
    """Kill the given actors (None entries and already-dead actors are fine)."""
    for actor in actors:
        if actor is not None:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - a dead actor or a gone cluster: nothing left to free
                pass


def _suffix() -> str:
    return secrets.token_hex(3)
