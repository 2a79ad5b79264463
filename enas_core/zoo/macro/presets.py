"""The presets of the macro space.

Complete resolved specs (``docs/INTERNALS.md``) that a submitted spec overrides; plain dicts, standard
library only (the API reads them without torch). ``paper-*`` carry the numbers of ENAS (Pham et al.
2018) as gathered in ``ENAS_SPEC.md`` sections 2-3, each saying in ``notes`` where the authors'
published code and the paper disagree and which one it follows; ``demo-*`` finish on a 2-core CPU
in minutes.
"""

from __future__ import annotations

from typing import Any

from enas_core.zoo.preset_parts import SHARED_NOTES, cnn_controller, cnn_sgd, resources

PAPER_MACRO: dict[str, Any] = {
    "space": "macro", "dataset": "cifar10", "data_dir": None, "epochs": 310, "seed": 0,
    "controller": cnn_controller(lr=0.001, tanh_constant=1.5, op_tanh_reduce=1.0, op_bias=False,
                                  steps_per_epoch=50, archs_per_step=20),
    "child": {"num_layers": 12, "channels": 36, "batch_size": 128,
              **cnn_sgd(lr_min=0.0005, l2=0.00025, keep_prob=0.9),
              "aux_weight": 0.0, "cutout": 0, "reward_batch": 128, "bn_mode": "train"},
    "derive": {"num_samples": 100, "top_k": 5},
    "retrain": {"enabled": True, "top_k": 1, "epochs": 310, "batch_size": 100,
                "channels": 96, **cnn_sgd(lr_min=0.001, l2=0.0002, keep_prob=0.5),
                "drop_path_keep": 1.0, "aux_weight": 0.0, "cutout": 0},
    "resources": resources(1.0),
    "notes": [
        "Search: 12 layers, 36 channels kept constant, batch 128, 310 epochs, SGDR T0=10 Tmul=2 from "
        "lr 0.05 to 5e-4, Nesterov 0.9, L2 2.5e-4, keep 0.9. The authors' search script passes "
        "--child_use_aux_heads and drop-path keep 0.6, which their macro child ignores: no aux head "
        "(aux_weight 0), no drop path.",
        "Controller: 50 updates x 20 architectures per epoch, Adam lr 1e-3 (beta1 0, eps 1e-3), "
        "logits 1.5*tanh(z) for ops and skips, skip logits [-q, q] from the attention over earlier "
        "layers' anchors, skip-connection KL penalty (target 0.4, weight 0.8) added to the "
        "controller loss (not the reward), entropy weight 1e-4, baseline EMA 0.99.",
        "Skip connections: s_j = 1 connects the output of layer j (j <= i-1, so s_{i-1} adds the "
        "layer's own input again as a residual), matching the controller's anchor j and the paper's "
        "'k-1 previous indices at layer k'. The authors' child reads skip j from [stem, layer 0 .. "
        "layer i-2] instead (off by one from their controller's anchors); we follow the paper.",
        "The authors' macro code computes the reward with eval-mode BN and mixed statistics; this "
        "preset uses train-mode BN like the micro search (see the BatchNorm note).",
        "At each reduction only the earlier outputs a later layer still reads are factorized-"
        "reduced (the authors reduce every one; same function, fewer parameters).",
        "Retrain: the searched architecture at 96 channels doubling at each reduction, batch 100, "
        "310 epochs, lr 0.05 to 1e-3, L2 2e-4, keep 0.5, no drop path (drop_path_keep 1.0), no aux "
        "head. Its depth is the searched one (12 layers; there is no retrain.num_layers): the "
        "authors' final script (24 layers, the paper's 21.3M parameters) retrains a 24-layer, "
        "300-token architecture that their 12-layer search cannot produce; search with "
        "child.num_layers 24 for a 24-layer final model. The authors' "
        "final macro code uses plain kxk convolutions for the separable ops and crashes on pooling "
        "ops (E#18, E#41); the retrained model follows the paper's final-mode layers "
        "(ReLU-1x1-BN, ReLU-kxk-BN; skips concatenated, ReLU-1x1-BN).",
        *SHARED_NOTES,
    ],
}  # fmt: skip


DEMO_MACRO: dict[str, Any] = {
    "space": "macro", "dataset": "digits", "data_dir": None, "epochs": 8, "seed": 0,
    "controller": cnn_controller(lr=0.001, tanh_constant=1.5, op_tanh_reduce=1.0, op_bias=False,
                                  steps_per_epoch=10, archs_per_step=10),
    "child": {"num_layers": 4, "channels": 8, "batch_size": 64,
              **cnn_sgd(lr_min=0.0005, l2=0.00025, keep_prob=0.9),
              "aux_weight": 0.0, "cutout": 0, "reward_batch": 64, "bn_mode": "train"},
    "derive": {"num_samples": 20, "top_k": 3},
    "retrain": {"enabled": True, "top_k": 1, "epochs": 10, "batch_size": 64,
                "channels": 12, **cnn_sgd(lr_min=0.001, l2=0.0002, keep_prob=0.8),
                "drop_path_keep": 1.0, "aux_weight": 0.0, "cutout": 0},
    "resources": resources(0.0),
    "notes": [
        "A small macro search on scikit-learn's 8x8 digits for a 2-core CPU (4 layers, 8 channels; "
        "reductions after layers 0 and 1, 8x8 -> 4x4 -> 2x2); the paper's controller and optimiser "
        "numbers otherwise (logits 1.5*tanh(z), skip KL penalty 0.8 towards 0.4).",
        *SHARED_NOTES[:3],
    ],
}  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {"paper-cifar10-macro": PAPER_MACRO, "demo-macro": DEMO_MACRO}
