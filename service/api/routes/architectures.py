"""One architecture: its genotype (JSON and structured form) and its drawing."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from service.api.deps import StoreDep
from service.api.schemas import ArchitectureDetail, architecture_public
from service.errors import InvalidInput, NotFound, Unavailable
from service.records import ArchitectureRecord

router = APIRouter(prefix="/architectures", tags=["architectures"])
logger = logging.getLogger(__name__)


def _structured(record: ArchitectureRecord) -> dict[str, Any] | None:
    genotype = record.genotype or {}
    if isinstance(genotype.get("structured"), dict):
        return genotype["structured"]
    try:
        from enas_core.spaces import get_space  # stdlib-only module, imported when first needed

        space = get_space(genotype["space"], **genotype.get("params", {}))
        return space.structured(record.tokens)
    except Exception as e:  # no genotype stored, or a space this build cannot read
        logger.debug("no structured form for architecture %s: %s", record.id, e)
        return None


@router.get("/{architecture_id}", response_model=ArchitectureDetail)
def get_architecture(architecture_id: int, store: StoreDep) -> dict[str, Any]:
    """One architecture with its genotype and the human-readable structured form."""
    record = store.get_architecture(architecture_id=architecture_id)
    return {**architecture_public(record), "structured": _structured(record)}


@router.get(
    "/{architecture_id}/svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}}
)
def draw_architecture(architecture_id: int, store: StoreDep) -> Response:
    """The architecture drawn as SVG."""
    record = store.get_architecture(architecture_id=architecture_id)
    if not record.genotype:
        raise NotFound(f"architecture {architecture_id} has no stored genotype to draw")
    try:
        from enas_core.genotype import Genotype, genotype_svg
    except ImportError as e:
        raise Unavailable(f"drawing is not available in this build: {e}") from e
    try:
        svg = genotype_svg(Genotype.from_dict(record.genotype))
    except ValueError as e:  # GenotypeError is a ValueError
        raise InvalidInput(f"the stored genotype cannot be drawn: {e}", field="genotype") from e
    return Response(svg, media_type="image/svg+xml")
