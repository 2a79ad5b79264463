"""Runs searches: the queue consumer (`workers.worker`), the Ray driver of one search
(`workers.runner`, over a `workers.search_run.SearchClaim` / `SearchRun`), its actors
(`workers.actors`), retraining tasks (`workers.retrain`), leases (`workers.lease`) and retries
(`workers.retry`). An epoch's rows and metrics come from the core (`enas_core.epoch`).

May import `enas_core`, `service` (store, queue, settings, spec) and Ray. Imports nothing itself,
so that importing a submodule pulls only what it needs.
"""
