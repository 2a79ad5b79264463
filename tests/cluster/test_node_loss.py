"""A real multi-node Ray cluster (see conftest): placement by custom resources, a node killed under
a running search, retraining spread over the nodes, an impossible request failing fast."""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.cli.client import EnasClient
from service.store import Store
from tests.cluster.conftest import Site, needs_cluster, wait_until
from tests.workers.test_resume import search_rows
from tests.workers.test_retrain_retries import RETRAIN

pytestmark = needs_cluster

SPEC: dict[str, Any] = {
    "space": "micro",
    "dataset": "digits",
    "epochs": 3,
    "seed": 5,
    "controller": {"steps_per_epoch": 2, "archs_per_step": 4},
    "child": {"num_layers": 1, "channels": 4, "batch_size": 16, "steps_per_epoch": 12, "reward_batch": 16},
    "derive": {"num_samples": 6, "top_k": 2},
    "retrain": {**RETRAIN, "top_k": 2},
    # both nodes offer "pool": 1, so one retraining task per node at a time: two tasks, two nodes
    "resources": {"num_cpus": 1, "shared": {"pool": 0.01}, "retrain": {"pool": 1}},
}


def finished(client: EnasClient, search_id: int) -> dict[str, Any] | None:
    search = client.search(search_id)
    return search if search["status"] in ("succeeded", "failed", "cancelled") else None


@pytest.mark.xfail(
    run=False,
    reason="open: Ray objects over the inline size (~100 KB) stored on the host's nodes never reach "
    "the enas worker's node in its own network namespace (ray.get hangs: 'objects are still not "
    "local'); small results, GCS and TCP both ways over the veth work. Reproduced with a bare "
    "driver in the namespace (no enas code); the search itself therefore never finishes epoch 0",
)
def test_a_search_survives_the_death_of_the_node_holding_its_actors(site: Site) -> None:
    ray = site.ray
    ray.start_head()
    ray.start_node("node_a", cpus=2)
    wait_until(lambda: "node_a" in ray.alive_resources(), 120, "Ray node node_a", site)
    ray.start_node("node_b", cpus=2)
    wait_until(lambda: ray.alive_resources() >= {"node_a", "node_b"}, 120, "both Ray nodes", site)
    site.start_worker()
    client = EnasClient(site.url)
    client.wait_ready(timeout=120)
    store = Store(site.pg.url)
    try:
        began = time.monotonic()
        reference = client.submit(SPEC)["id"]
        ref = wait_until(lambda: finished(client, reference), 400, "the reference search", site)
        assert ref["status"] == "succeeded", (ref.get("error"), site.logs())
        reference_s = time.monotonic() - began
        names = ray.node_names()
        retrained_on = {names.get(r.metrics["node"]) for r in store.list_retrains(search_id=reference)}
        assert retrained_on == {"node_a", "node_b"}, (retrained_on, site.logs())

        ray.hold("node_b", cpus=2)  # node_b full: the search's actors can only go to node_a
        lossy = client.submit(SPEC)["id"]
        wait_until(
            lambda: ray.actor_nodes(f"search-{lossy}-shared-") == ["node_a"], 120, "actor on node_a", site
        )
        wait_until(lambda: store.get_search(search_id=lossy).epoch == 0, 300, "epoch 0 committed", site)
        ray.release("node_b")
        ray.kill("node_a")  # kill -9 of its raylet, object store and workers, mid-epoch 1
        wait_until(
            lambda: ray.actor_nodes(f"search-{lossy}-shared-") == ["node_b"],
            180,
            "actor back on node_b",
            site,
        )
        final = wait_until(lambda: finished(client, lossy), 400, "the search after the node loss", site)
        assert final["status"] == "succeeded", (final.get("error"), site.logs())
        assert search_rows(store, lossy) == search_rows(store, reference)  # nothing lost, nothing twice
        print(f"\ncluster: reference search {reference_s:.1f}s on 2 nodes")
    finally:
        store.dispose()
        client.close()


@pytest.mark.xfail(reason="needs wt-place (fail fast on impossible resource requests)", strict=False)
def test_an_impossible_resource_request_fails_fast_naming_it(site: Site) -> None:
    ray = site.ray
    ray.start_head()
    ray.start_node("node_a", cpus=2)
    wait_until(lambda: "node_a" in ray.alive_resources(), 90, "the Ray node", site)
    site.start_worker()
    client = EnasClient(site.url)
    client.wait_ready(timeout=120)
    try:
        spec = {**SPEC, "resources": {"num_cpus": 1, "shared": {"nowhere": 1}}}
        search = client.submit(spec)["id"]
        final = wait_until(lambda: finished(client, search), 60, "the impossible search to fail", site)
        assert final["status"] == "failed" and "nowhere" in (final.get("error") or "")
    finally:
        client.close()
