"""The search spaces, one package each (`micro`, `macro`, `rnn`, ...), and what they share.

`enas_core.spaces` discovers every package here that defines a module-level `PLUGIN`
(`enas_core.spaces.plugin.SpacePlugin`); adding a space is adding a folder here, nothing else.
A space folder holds:

* `__init__.py`: `PLUGIN = SpacePlugin(...)`; standard library only (references are strings).
* `space.py`: the `Space` subclass (decisions, canonical and structured forms, sizes), the token
  decoding (tokens are decoded here only) and `network_config`; standard library only (the API
  imports it). `presets.py` (the space's presets) and `draw.py` (drawing and text form): the same.
* `child.py`: the standalone final child, the ONE definition of it; torch and `image_ops` only,
  since `enas_core.codegen` copies its text into the exported model.py. Built from the genotype's
  structured form (op names), with its ops created by name from the space's op registry.
* `shared.py`: the shared-weight search model (imports `child.py`, `image_ops` and the decoding of
  `space.py`) and the builders `build_shared` / `build_final`.
* `controller.py`: the space's `enas_core.controller.Controller` subclass (its rollout).

Shared by the spaces: `image_ops.py` (the CNN ops, torch only: copied into model.py),
`cell_stack.py` (the cell-stacking networks' skeleton, micro and nasnet: copied too),
`search_ops.py` (the shared cell stacks' search step, torch only), `cell_network.py` (the cell
stacks' network shape, standard library only) and `preset_parts.py` (pieces of the presets,
standard library only).
"""
