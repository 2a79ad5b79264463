"""Presets of the NASNet space: complete resolved specs, in the shape of the other spaces'
(plain dicts, standard library only: the API reads them without torch).

``demo-nasnet`` finishes on a 2-core CPU in minutes. ``paper-cifar10-nasnet`` searches with ENAS's
CIFAR-10 recipe (paper-cifar10-micro's numbers) over the full NASNet space and retrains with the
NASNet CIFAR-10 recipe of the authors' TF-slim code (tensorflow/models research/slim/nets/nasnet/
nasnet.py: `cifar_config`, its training notes and `nasnet_cifar_arg_scope`).
"""

from __future__ import annotations

from typing import Any

from enas_core.zoo.preset_parts import SHARED_NOTES, cnn_controller, cnn_sgd, resources


def _controller(**overrides: Any) -> dict[str, Any]:
    """ENAS's CIFAR-10 controller without the micro op prior (op_bias: it names micro's op list)."""
    return cnn_controller(op_bias=False, **overrides)


DEMO_NASNET: dict[str, Any] = {
    "space": "nasnet",
    "dataset": "digits",
    "data_dir": None,
    "epochs": 8,
    "seed": 0,
    "controller": _controller(steps_per_epoch=10),
    "child": {
        "num_layers": 3,
        "channels": 16,
        "num_blocks": 2,
        "batch_size": 64,
        **cnn_sgd(lr_min=0.0005, l2=0.0001, keep_prob=0.9, lr_max=0.1),
        "steps_per_epoch": 150,
        "aux_weight": 0.0,
        "cutout": 0,
        "reward_batch": 64,
        "bn_mode": "train",
    },
    "derive": {"num_samples": 20, "top_k": 3},
    "retrain": {
        "enabled": True,
        "top_k": 1,
        "epochs": 8,
        "batch_size": 64,
        "num_layers": 3,
        "channels": 16,
        **cnn_sgd(lr_min=0.0001, l2=0.0002, keep_prob=0.8),
        "drop_path_keep": 0.6,
        "aux_weight": 0.0,
        "cutout": 0,
    },
    "resources": resources(0.0),
    "notes": [
        "A small NASNet search on scikit-learn's 8x8 digits for a 2-core CPU, with demo-micro's "
        "recipe (optimisers, schedules, controller shaping): the mechanics in a few minutes.",
        "Shrunk: 2 blocks per cell (the paper: B = 5; as demo-micro keeps 2 of 5 nodes), cells "
        "N R N R N (3 layers; the paper stacks N normal cells between reductions), 16 channels, "
        "150 shared steps per epoch, 8 epochs; the retrained child has the same 3 layers and 16 "
        "channels, 8 epochs. All 13 ops and both combine methods stay.",
        "Measured (seed 0, one CPU thread, enas_core's epoch loop): the search takes about 2 "
        "minutes, the mean reward rises from about 0.17 to 0.21 over 8 epochs (each weighted op "
        "belongs to one (block, input slot, input, op) quadruple and 8 of the 13 ops have weights, "
        "so the shared weights learn slower than demo-micro's), the retrained child reaches about "
        "98% test accuracy.",
        "Search with ENAS's shared weights and controller (this service's method), not the paper's "
        "separately trained children with PPO: the space is NASNet's, the search is ENAS's.",
        "op_bias off: the controller's op logits start without a prior over the 13 ops.",
        "No aux head: after two reductions an 8x8 image is 2x2, too small for it.",
        *SHARED_NOTES[:3],
    ],
}

PAPER_NASNET: dict[str, Any] = {
    "space": "nasnet",
    "dataset": "cifar10",
    "data_dir": None,
    "epochs": 150,
    "seed": 0,
    "controller": _controller(),
    "child": {
        "num_layers": 6,
        "channels": 20,
        "num_blocks": 5,
        "batch_size": 160,
        **cnn_sgd(lr_min=0.0005, l2=0.0001, keep_prob=0.9),
        "aux_weight": 0.4,
        "cutout": 0,
        "reward_batch": 160,
        "bn_mode": "train",
    },
    "derive": {"num_samples": 100, "top_k": 5},
    "retrain": {
        "enabled": True,
        "top_k": 1,
        "epochs": 600,
        "batch_size": 32,
        "num_layers": 18,
        "channels": 32,
        **cnn_sgd(lr_min=0.0, l2=0.00025, keep_prob=1.0, lr_max=0.025),
        "sgdr_t0": 600,
        "sgdr_tmul": 1,
        "nesterov": False,
        "drop_path_keep": 0.6,
        "aux_weight": 0.4,
        "cutout": 0,
    },
    "resources": resources(1.0),
    "notes": [
        "Search: ENAS's CIFAR-10 micro recipe (paper-cifar10-micro: 6 layers, 20 channels, batch "
        "160, 150 epochs, SGDR 0.05 -> 5e-4, L2 1e-4, keep 0.9, aux 0.4; controller 30 x 10 "
        "architectures per epoch) over the full NASNet space, B = 5 blocks and 13 ops. The NASNet "
        "paper trained each sampled child separately (PPO, 500 GPUs); that is not this service's "
        "method. The shared model holds every (block, slot, input, op) weight: about 48.5M "
        "parameters at 20 channels.",
        "Retrain, from TF-slim's NASNet CIFAR-10 code: 18 normal cells in three stacks of 6 with a "
        "reduction cell between stacks (num_cells=18, num_reduction_layers=2: num_layers 18 here), "
        "32 filters (num_conv_filters=32), stem 3 x 32 (stem_multiplier=3), drop-path keep 0.6, "
        "dense-dropout keep 1.0, aux head weight 0.4, batch 32, lr 0.025 with one cosine period "
        "(sgdr_t0 600, tmul 1, to 0; applied per epoch here, per step there), 600 epochs, global "
        "gradient-norm clip 5.",
        "L2: nasnet_cifar_arg_scope's weight_decay 5e-4 is a slim l2_regularizer, 5e-4 * sum(w^2) / "
        "2, which is l2 = 2.5e-4 in this service's lambda * sum(w^2).",
        "Not given there: the optimizer (momentum 0.9 without Nesterov is assumed) and cutout (the "
        "paper's best CIFAR-10 figures use cutout: set retrain.cutout).",
        "NASNet-A (the known genotype nasnet-a) built at 18 layers and 32 channels has 3,214,304 "
        "parameters without the aux head; the paper reports 3.3M for NASNet-A (6 @ 768). The "
        "head sees 5 x 32 x 4 = 640 channels here, not 768: this space concatenates the unused "
        "states (DARTS's reading of the cell), TF-slim's normal cell also concatenates h_{i-1}.",
        *SHARED_NOTES,
    ],
}

PRESETS: dict[str, dict[str, Any]] = {"demo-nasnet": DEMO_NASNET, "paper-cifar10-nasnet": PAPER_NASNET}
