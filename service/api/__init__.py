"""The HTTP API and the web page: ``create_app(settings)`` in `service.api.app`.

- `app`: the app factory and its lifespan (the store and the queue on ``app.state``);
- `deps`: the routes' dependencies (``StoreDep``, ``QueueDep``, ``CallerDep``...);
- `routes/`: one thin router per resource; `usecases`: what the mutating endpoints do, the store
  and the queue together (submit, cancel, resume, retrain);
- `schemas`: the request and response models; `handlers`: the one place where exceptions become
  HTTP answers; `web/`: the page's static files (HTML, JS, CSS).

Imports: `service.store`, `service.queue`, `service.spec`, `service.settings`, `service.errors`
and the torch-free parts of ``enas_core`` (``spaces``, ``genotype``, ``codegen``); never
`service.cli`, ``workers``, torch or Ray (the API image stays small).
"""
