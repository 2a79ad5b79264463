"""The HTTP API: ``create_app(settings)`` in ``service.api.app``."""
