"""The pieces the spaces share: SpaceParam, the cell stack's config and slots, the cell stacks'
network shape, the language model's shape."""

from __future__ import annotations

from enas_core.spaces import get_space
from enas_core.zoo.cell_network import cell_network_config
from enas_core.zoo.cell_stack import ImageNetConfig, cell_keep, cell_slots
from enas_core.zoo.micro.child import MicroNetConfig
from enas_core.zoo.nasnet.child import NasnetNetConfig
from enas_core.zoo.rnn.child import RnnChild
from enas_core.zoo.rnn.shared import SharedRnnModel


def test_space_param_reads_the_params() -> None:
    space = get_space("macro", num_layers=4, num_ops=3)
    assert (
        (space.num_layers, space.num_ops) == (4, 3) == (space.params["num_layers"], space.params["num_ops"])
    )
    assert get_space("rnn", num_nodes=5).num_nodes == 5


def test_config_from_network_ignores_other_keys() -> None:
    network = {"space": "micro", "num_layers": 3, "channels": 8, "num_nodes": 4, "vocab_size": 7}
    config = MicroNetConfig.from_network(network)
    assert (config.num_layers, config.channels, config.num_nodes) == (3, 8, 4)
    assert isinstance(config, ImageNetConfig)
    assert NasnetNetConfig.from_network({"num_blocks": 2, "num_nodes": 4}).num_blocks == 2


def test_cell_slots_reduce_at_p_and_2p_plus_1() -> None:
    slots = cell_slots(ImageNetConfig(num_layers=6, channels=4))
    assert [s.layer for s in slots if s.reduction] == [2, 5]
    assert [s.channels for s in slots] == [4, 4, 8, 8, 8, 16, 16, 16]
    assert [s.level for s in slots] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert cell_keep(7, 8, 0.6, 1.0) == 0.6 and cell_keep(7, 8, 0.6, 0.0) == 1.0


def test_cell_network_config() -> None:
    retrain = {"num_layers": 3, "channels": 8, "keep_prob": 0.9, "aux_weight": 0.4, "drop_path_keep": 1.0}
    shape = {"in_channels": 1, "num_classes": 5, "image_size": 8}
    network = cell_network_config({"num_blocks": 2}, retrain, shape)
    assert network == {
        "num_layers": 3,
        "channels": 8,
        "num_blocks": 2,
        "in_channels": 1,
        "num_classes": 5,
        "image_size": 8,
        "keep_prob": 0.9,
        "aux_head": True,
        "drop_path_keep": None,
    }
    assert cell_network_config({}, {**retrain, "drop_path_keep": 0.6}, shape)["drop_path_keep"] == 0.6


def test_lm_shape_defaults_and_round_trip() -> None:
    shared = SharedRnnModel(11, hidden_size=6, num_nodes=3, dropout_hidden=0.3)
    assert shared.shape() == {
        "hidden_size": 6,
        "num_nodes": 3,
        "dropout_input": 0.2,
        "dropout_hidden": 0.3,
        "dropout_output": 0.2,
        "init_range": 0.05,
    }
    structured = get_space("rnn", num_nodes=3).structured([0, 0, 1, 1, 2])
    assert RnnChild(structured, 11, **shared.shape()).shape() == shared.shape()
