"""Runs searches: the queue consumer (`workers.worker`), the Ray driver of one search
(`workers.runner`), its actors (`workers.actors`) and retraining tasks (`workers.retrain`).

Imports nothing, so that importing a submodule pulls only what it needs.
"""
