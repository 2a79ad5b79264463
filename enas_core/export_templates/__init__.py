"""Source templates of the standalone PyTorch module file (`enas_core.codegen`).

Each module here is valid Python that imports torch alone (plus its sibling `ops`), so ruff, mypy
and the tests read it like any other module; `enas_core.codegen` copies the text below each
module's `BODY_MARKER` line into the generated file. Nothing here imports torch at package level.
"""

BODY_MARKER = "# --- model.py body ---"
