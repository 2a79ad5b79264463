"""enas-service: the API, persistence, settings, web page and CLI (imports nothing on purpose)."""
