"""Torch models: shared-weight search networks and standalone children, one module per space."""
