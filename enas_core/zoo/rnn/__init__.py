"""The recurrent-cell space of ENAS (Penn Treebank): a cell of highway nodes (see `space.py`)."""

from enas_core.spaces.plugin import SpacePlugin

PLUGIN = SpacePlugin(
    name="rnn",
    order=30,
    task="language",
    space="enas_core.zoo.rnn.space:RnnSpace",
    spec_params=("num_nodes",),
    default_preset="demo-rnn",
    presets="enas_core.zoo.rnn.presets:PRESETS",
    network_config="enas_core.zoo.rnn.space:network_config",
    draw="enas_core.zoo.rnn.draw:draw",
    text_lines="enas_core.zoo.rnn.draw:text_lines",
    controller="enas_core.zoo.rnn.controller:RnnController",
    export_modules=("enas_core.zoo.rnn.child",),
    trainer="enas_core.lm:LMSharedTrainer",
    retrainer="enas_core.lm:retrain_lm",
)
