"""Routers of the API, one module per resource; each route validates, calls the store or a
use-case (`service.api.usecases`) and shapes the answer (`service.api.schemas`). Routes never
commit and never translate errors (`service.api.handlers` does). Imports as `service.api`."""
