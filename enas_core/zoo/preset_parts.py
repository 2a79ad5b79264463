"""Pieces of the presets that several spaces share (standard library only): the resources section,
the notes every image search carries, the CNN controller and SGD sections with the paper's numbers."""

from __future__ import annotations

from typing import Any

SHARED_NOTES = [
    "BatchNorm: the reward is computed with the shared model in train-mode BN on a held-out "
    "validation batch, as the authors' micro code does (their macro code uses eval-mode BN for the "
    "reward, NNI uses eval()); child.bn_mode switches it.",
    "L2: applied as the paper's lambda * sum(w^2) over the parameters on the sampled path, not as "
    "PyTorch weight_decay (= 2 * lambda, and it skips parameters without a gradient); the authors' "
    "code adds it over every child variable at every step.",
    "Gradient clipping (child.grad_clip) is applied; the authors' CIFAR code appends the unclipped "
    "gradient, so clipping does nothing there.",
    "Data: 45,000 train / the last 5,000 training images as validation (rewards, derivation); the "
    "test split is used only for the retrained model's final score.",
    "Controller: the entropy bonus uses the full distribution's entropy at each decision (the "
    "authors' macro code uses the sampled token's -log p); gradients are averaged over the "
    "architectures of one update, as their num_aggregate does.",
]


def cnn_controller(**overrides: Any) -> dict[str, Any]:
    base = {
        "hidden": 64,
        "init_range": 0.1,
        "lr": 0.0035,
        "adam_beta1": 0.0,
        "adam_beta2": 0.999,
        "adam_eps": 0.001,
        "tanh_constant": 1.1,
        "op_tanh_reduce": 2.5,
        "temperature": None,
        "op_bias": True,
        "entropy_weight": 0.0001,
        "baseline_decay": 0.99,
        "steps_per_epoch": 30,
        "archs_per_step": 10,
        "skip_target": 0.4,
        "skip_weight": 0.8,
    }
    return {**base, **overrides}


def cnn_sgd(lr_min: float, l2: float, keep_prob: float, lr_max: float = 0.05) -> dict[str, Any]:
    # precision "bf16" (autocast) and channels_last are GPU speed options, off by default: at the
    # paper's 20 channels a step is launch-bound and bf16 measured slower (PERF_NOTES)
    return {
        "steps_per_epoch": None,
        "lr_max": lr_max,
        "lr_min": lr_min,
        "sgdr_t0": 10,
        "sgdr_tmul": 2,
        "momentum": 0.9,
        "nesterov": True,
        "l2": l2,
        "grad_clip": 5.0,
        "keep_prob": keep_prob,
        "precision": "fp32",
        "channels_last": False,
    }


def resources(num_gpus: float) -> dict[str, Any]:
    # tensorboard: also write TensorBoard event files under <artifact_dir>/<search id>/tensorboard;
    # shared / controller / retrain: Ray custom resources (name -> amount) each role also asks for,
    # which places it on the nodes that offer them (e.g. {"node_a": 0.01}); empty: anywhere it fits
    return {
        "num_cpus": 1.0,
        "num_gpus": num_gpus,
        "device": "auto",
        "tensorboard": False,
        "shared": {},
        "controller": {},
        "retrain": {},
    }
