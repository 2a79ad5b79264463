"""The NASNet cell search space (Zoph et al. 2018): the space ENAS's micro space was cut down from.

space.py (the Space, decoding, KNOWN, network_config), presets.py and draw.py are standard library
only; child.py is the standalone final child (torch + the image building blocks, copied into
model.py), shared.py the shared-weight search model, controller.py the controller's rollout.
"""

from __future__ import annotations

from enas_core.spaces.plugin import SpacePlugin

_HERE = "enas_core.zoo.nasnet"

PLUGIN = SpacePlugin(
    name="nasnet",
    order=40,
    task="image",
    space=f"{_HERE}.space:NasnetSpace",
    spec_params=("num_blocks",),
    default_preset="demo-nasnet",
    presets=f"{_HERE}.presets:PRESETS",
    network_config=f"{_HERE}.space:network_config",
    draw=f"{_HERE}.draw:draw",
    text_lines=f"{_HERE}.draw:text_lines",
    controller=f"{_HERE}.controller:NasnetController",
    export_modules=("enas_core.zoo.image_ops", "enas_core.zoo.cell_stack", f"{_HERE}.child"),
    shared_model=f"{_HERE}.shared:build_shared",
    final_model=f"{_HERE}.shared:build_final",
    known=f"{_HERE}.space:KNOWN",
)
