"""The presets of the recurrent-cell space.

Complete resolved specs (``docs/INTERNALS.md``) that a submitted spec overrides; plain dicts, standard
library only (the API reads them without torch). ``paper-*`` carry the numbers of ENAS (Pham et al.
2018) as gathered in ``ENAS_SPEC.md`` sections 2-3, each saying in ``notes`` where the authors'
published code and the paper disagree and which one it follows; ``demo-*`` finish on a 2-core CPU
in minutes.
"""

from __future__ import annotations

from typing import Any

from enas_core.zoo.preset_parts import resources


def rnn_controller(**overrides: Any) -> dict[str, Any]:
    base = {
        "hidden": 100, "init_range": 0.1, "lr": 0.00035, "adam_beta1": 0.0, "adam_beta2": 0.999,
        "adam_eps": 0.001, "tanh_constant": 2.5, "temperature": 5.0, "entropy_weight": 0.0001,
        "baseline_decay": 0.99, "steps_per_epoch": 2000, "archs_per_step": 1,
    }  # fmt: skip
    return {**base, **overrides}


PAPER_PTB: dict[str, Any] = {
    "space": "rnn", "dataset": "ptb", "data_dir": None, "epochs": 150, "seed": 0,
    "controller": rnn_controller(),
    "child": {"num_nodes": 12, "hidden_size": 720, "bptt": 35, "batch_size": 64,
              "steps_per_epoch": None, "lr_max": 20.0, "lr_decay": 0.96, "lr_decay_start": 15,
              "grad_clip": 0.25, "l2": 1e-7, "dropout_input": 0.75, "dropout_hidden": 0.25,
              "dropout_output": 0.75, "reward_c": 80.0, "reward_batch": 64},
    "derive": {"num_samples": 100, "top_k": 5},
    "retrain": {"enabled": True, "top_k": 1, "epochs": 2000, "batch_size": 64, "hidden_size": 748,
                "bptt": 35, "steps_per_epoch": None, "lr_max": 20.0, "lr_decay": 0.9991,
                "lr_decay_start": 14, "grad_clip": 0.25, "l2": 5e-7, "dropout_input": 0.75,
                "dropout_hidden": 0.25, "dropout_output": 0.76},
    "resources": resources(1.0),
    "notes": [
        "Follows the paper's numbers where the authors' PTB code (which its README marks as wrong) "
        "differs: controller Adam lr 3.5e-4 (code 1e-3), entropy weight 1e-4 (code 1e-3), 100-unit "
        "LSTM, logits 2.5*tanh(z/5) (tanh constant 2.5, temperature 5 applied as z/5), 2000 "
        "controller steps of one architecture per epoch (code: 100 updates x 10 architectures). "
        "Node l's index logits get -(l-j)^2/6 added after the tanh, as in the authors' sampler.",
        "Shared weights (paper): SGD lr 20, x0.96 per epoch from epoch 15, 150 epochs, global-norm "
        "clip 0.25, L2 1e-7, BPTT 35, batch 64 (the authors' search script: lr 0.25 x0.95 from "
        "epoch 12, clip 10, batch 20, 100 epochs).",
        "Reward 80 / validation perplexity on one minibatch, baseline EMA 0.99, 12-node cell with "
        "highway connections, output the mean of the loose ends, embedding tied to the softmax.",
        "Not in the paper, taken from the authors' scripts: hidden size 720 in search, 748 when "
        "retraining; dropout rates = 1 - their keep probabilities (x 0.25, h 0.75, o 0.25 in search; "
        "o 0.24 when retraining); retraining numbers (2000 epochs, lr decay 0.9991 from epoch 14, "
        "L2 5e-7) from ptb_final.sh. Not implemented: their embedding dropout (e_keep 0.75/0.79) "
        "and the final run's slowness regulariser (1e-3).",
        "Perplexities on the repository's ptb-mini copy are not comparable with published PTB figures.",
        "L2: applied as lambda * sum(w^2) over the parameters on the sampled path.",
    ],
}  # fmt: skip


DEMO_RNN: dict[str, Any] = {
    "space": "rnn", "dataset": "synthetic-ptb", "data_dir": None, "epochs": 4, "seed": 0,
    "controller": rnn_controller(hidden=64, lr=0.001, steps_per_epoch=10, archs_per_step=10),
    "child": {"num_nodes": 4, "hidden_size": 32, "bptt": 10, "batch_size": 32,
              "steps_per_epoch": 50, "lr_max": 20.0, "lr_decay": 0.96, "lr_decay_start": 2,
              "grad_clip": 0.25, "l2": 1e-7, "dropout_input": 0.2, "dropout_hidden": 0.2,
              "dropout_output": 0.2, "reward_c": 80.0, "reward_batch": 32},
    "derive": {"num_samples": 10, "top_k": 2},
    "retrain": {"enabled": True, "top_k": 1, "epochs": 3, "batch_size": 32, "hidden_size": 32,
                "bptt": 10, "steps_per_epoch": None, "lr_max": 20.0, "lr_decay": 0.96,
                "lr_decay_start": 2, "grad_clip": 0.25, "l2": 1e-7, "dropout_input": 0.2,
                "dropout_hidden": 0.2, "dropout_output": 0.2},
    "resources": resources(0.0),
    "notes": [
        "A small recurrent-cell search (4 nodes, hidden 32, BPTT 10) for a 2-core CPU.",
        "Dataset synthetic-ptb (a generated Markov-chain corpus in PTB's shape) so the demo runs "
        "without files. For real text give dataset ptb: the worker reads the three Mikolov files "
        "from data_dir, default <ENAS_DATA_DIR>/ptb; scripts/prepare_data.py puts the "
        "repository's ptb-mini copy there.",
        "Controller Adam lr 1e-3 (the paper's 3.5e-4 barely moves in 40 steps), 64-unit LSTM, "
        "10 updates x 10 architectures per epoch; logits 2.5*tanh(z/5) as in the paper.",
    ],
}  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {"paper-ptb": PAPER_PTB, "demo-rnn": DEMO_RNN}
