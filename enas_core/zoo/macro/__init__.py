"""The macro (whole-network) CNN space of ENAS: one op and the skip connections per layer (see `space.py`)."""

from enas_core.spaces.plugin import SpacePlugin

PLUGIN = SpacePlugin(
    name="macro",
    order=20,
    task="image",
    space="enas_core.zoo.macro.space:MacroSpace",
    spec_params=("num_layers",),
    default_preset="demo-macro",
    presets="enas_core.zoo.macro.presets:PRESETS",
    network_config="enas_core.zoo.macro.space:network_config",
    draw="enas_core.zoo.macro.draw:draw",
    text_lines="enas_core.zoo.macro.draw:text_lines",
    controller="enas_core.zoo.macro.controller:MacroController",
    export_modules=("enas_core.zoo.image_ops", "enas_core.zoo.macro.child"),
    shared_model="enas_core.zoo.macro.shared:build_shared",
    final_model="enas_core.zoo.macro.shared:build_final",
)
