"""enas-service: three houses, each a package, plus the settings and errors they share.

- Infrastructure the API and the workers share: `service.store` (the database: the one store,
  its contract, models, migrations), `service.queue` (Redis: jobs, events, cancel flags, leases,
  the worker registry), `service.spec` and `service.presets` (the search spec a user submits), and
  the top-level `service.settings`, `service.errors`, `service.logging`.
- The API and its page: `service.api` (app, routes, use-cases, the page's static files).
- The command line and its HTTP client: `service.cli`.

Import rules (the layer check and ``tests/test_layers.py`` pin the first):
- nothing here imports torch, ray or ``workers``, except `service.cli.cli` (lazily, inside
  ``enasctl worker``);
- the infrastructure imports neither `service.api` nor `service.cli`; `service.store` and
  `service.queue` do not import each other;
- `service.api` imports the infrastructure, never `service.cli`;
- `service.cli` talks to the API over HTTP (`service.cli.client`); only its process commands
  (`service.cli.cli`: serve, up, worker, db upgrade) import the API, the store or the queue, lazily.

This package's ``__init__`` imports nothing on purpose.
"""
