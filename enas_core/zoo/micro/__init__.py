"""The micro (cell) CNN space of ENAS: a normal cell and a reduction cell (see `space.py`)."""

from enas_core.spaces.plugin import SpacePlugin

PLUGIN = SpacePlugin(
    name="micro",
    order=10,
    task="image",
    space="enas_core.zoo.micro.space:MicroSpace",
    spec_params=("num_nodes",),
    default_preset="demo-micro",
    presets="enas_core.zoo.micro.presets:PRESETS",
    network_config="enas_core.zoo.micro.space:network_config",
    draw="enas_core.zoo.micro.draw:draw",
    text_lines="enas_core.zoo.micro.draw:text_lines",
    controller="enas_core.zoo.micro.controller:MicroController",
    export_modules=("enas_core.zoo.image_ops", "enas_core.zoo.cell_stack", "enas_core.zoo.micro.child"),
    shared_model="enas_core.zoo.micro.shared:build_shared",
    final_model="enas_core.zoo.micro.shared:build_final",
)
