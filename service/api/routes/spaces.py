"""The search spaces and the presets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service import presets
from service.api.responses import errors
from service.errors import Unavailable

router = APIRouter(tags=["spaces"])


@router.get("/spaces", responses=errors(503))
def list_spaces() -> dict[str, Any]:
    """Each space's decisions and sizes, and the presets (``{"spaces": {...}, "presets": [...]}``)."""
    try:
        import enas_core.spaces as spaces  # stdlib-only; imported when first asked
    except ImportError as e:
        raise Unavailable(f"search space descriptions are not available: {e}") from e
    describe_all = getattr(spaces, "describe_all", None)
    if describe_all is not None:
        described = describe_all()
    else:  # each space at its default parameters
        described = {name: spaces.get_space(name).describe() for name in spaces.list_spaces()}
    return {"spaces": described, "presets": presets.list_presets()}


@router.get("/presets")
def list_presets() -> dict[str, Any]:
    """The presets: summaries, and each one's full resolved spec."""
    return {"items": [{**p, "spec": presets.get_preset(p["name"])} for p in presets.list_presets()]}
