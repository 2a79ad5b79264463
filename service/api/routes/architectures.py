"""One architecture: its genotype (JSON and structured form), its drawing, and its exports."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from service.api.deps import IdPath, StoreDep
from service.api.responses import ONE_ERRORS, errors
from service.api.schemas import ArchitectureDetail, architecture_public
from service.errors import Conflict, InvalidInput, NotFound, NotServedHere, Unavailable
from service.store import Store
from service.store.records import ArchitectureRecord

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


@router.get("/{architecture_id}", response_model=ArchitectureDetail, responses=ONE_ERRORS)
def get_architecture(architecture_id: IdPath, store: StoreDep) -> dict[str, Any]:
    """One architecture with its genotype and the human-readable structured form."""
    record = store.get_architecture(architecture_id=architecture_id)
    return {**architecture_public(record), "structured": _structured(record)}


@router.get(
    "/{architecture_id}/svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **ONE_ERRORS},
)
def draw_architecture(architecture_id: IdPath, store: StoreDep) -> Response:
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


ExportFormat = Literal["json", "pytorch", "onnx"]
ONNX_HERE = (
    "ONNX export needs torch, which the API process never loads: build it where torch is installed "
    "with `enasctl export SEARCH_ID --architecture {id} --format onnx -o model.onnx` (it fetches "
    "format=json and exports locally)"
)


@router.get(
    "/{architecture_id}/export",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}, "text/x-python": {}}},
        **errors(404, 409, 422, 501, 503),
    },
)
def export_architecture(
    architecture_id: IdPath,
    store: StoreDep,
    fmt: Annotated[ExportFormat, Query(alias="format")] = "json",
) -> Response:
    """The architecture as a versioned genotype JSON document (with its network's shape) or as a
    standalone PyTorch module file (``model.py``, torch only); ONNX: 501, built by the CLI."""
    record = store.get_architecture(architecture_id=architecture_id)
    if fmt == "onnx":
        raise NotServedHere(ONNX_HERE.format(id=architecture_id), field="format")
    from enas_core import codegen  # stdlib-only: it writes the model file as text

    genotype, network, source = _export_parts(store, record)
    if fmt == "json":
        return JSONResponse(codegen.export_document(genotype, network, source))
    text = codegen.pytorch_source(genotype, network, source)
    disposition = f'attachment; filename="enas_{record.search_id}_{architecture_id}.py"'
    return Response(text, media_type="text/x-python", headers={"Content-Disposition": disposition})


def _export_parts(store: Store, record: ArchitectureRecord) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(genotype, network shape, source) of a stored architecture; Conflict when not exportable."""
    from enas_core import codegen
    from enas_core.genotype import Genotype

    if not record.genotype:
        raise NotFound(f"architecture {record.id} has no stored genotype to export")
    spec = store.get_search(search_id=record.search_id).spec
    try:
        genotype = Genotype.from_dict(record.genotype)
        network = codegen.network_config(genotype, spec)
    except ValueError as e:  # GenotypeError and ExportError are ValueErrors
        raise Conflict(f"architecture {record.id} cannot be exported: {e}") from e
    source = {
        "search_id": record.search_id,
        "architecture_id": record.id,
        "hash": genotype.hash(),
        "dataset": spec.get("dataset"),
    }
    return genotype, network, source
