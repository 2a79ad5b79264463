"""The error every dataset loader raises (its own module: the loaders and `loading` both import it)."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset that cannot be loaded: unknown name, missing folder or file, malformed content."""
