"""The frozen configs of the image task (field names = keys of the resolved spec's sections).

* `ChildConfig`: the shared model and its training (the spec's "child" section, micro/macro).
* `ControllerTrainConfig`: the controller's optimisation (the "controller" section minus
  `enas_core.controller.ControllerConfig`'s keys).
* `RetrainConfig`: training a derived architecture from scratch (the "retrain" section).

`from_dict` ignores unknown keys, so one spec section can feed several configs. The language
model's configs live in `enas_core.lm` (`LMConfig`, `LMRetrainConfig`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_C = TypeVar("_C", bound="DataclassInstance")

PRECISIONS = ("fp32", "bf16")
BN_MODES = ("train", "eval")


def from_mapping(cls: type[_C], d: Mapping[str, Any]) -> _C:
    """`cls(**d)` keeping only the keys that are fields of the dataclass `cls`."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


@dataclass(frozen=True)
class ChildConfig:
    """Shared-model shape and training numbers (the spec's "child" section, CNN spaces).

    steps_per_epoch None: one pass over the train split. bn_mode: BatchNorm during the reward
    pass, "train" (batch statistics, running statistics untouched; E micro) or "eval".
    precision "bf16": bfloat16 autocast on the forward pass (parameters and optimizer stay fp32);
    channels_last: NHWC memory format for the model and its inputs. Both are speed options for
    a GPU (PERF_NOTES: measure them; at 20 channels bf16 was slower), off by default.
    """

    num_layers: int = 6
    channels: int = 20
    num_nodes: int = 5
    batch_size: int = 160
    steps_per_epoch: int | None = None
    lr_max: float = 0.05
    lr_min: float = 0.0005
    sgdr_t0: int = 10
    sgdr_tmul: int = 2
    momentum: float = 0.9
    nesterov: bool = True
    l2: float = 1e-4
    grad_clip: float | None = 5.0
    keep_prob: float = 0.9
    aux_weight: float = 0.4
    cutout: int = 0
    reward_batch: int = 160
    bn_mode: str = "train"
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be 'train' or 'eval', got {self.bn_mode!r}")
        _check_precision(self.precision)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChildConfig:
        """From the spec's "child" section; unknown keys are ignored."""
        return from_mapping(cls, d)


@dataclass(frozen=True)
class ControllerTrainConfig:
    """Controller optimisation (the spec's "controller" section minus ControllerConfig's keys):
    Adam (lr never decays), the entropy bonus added to the reward, the EMA baseline, and how many
    updates of how many sampled architectures each epoch's controller phase makes."""

    lr: float = 0.0035
    adam_beta1: float = 0.0
    adam_beta2: float = 0.999
    adam_eps: float = 1e-3
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    steps_per_epoch: int = 30
    archs_per_step: int = 10

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ControllerTrainConfig:
        """From the spec's "controller" section; unknown keys are ignored."""
        return from_mapping(cls, d)


@dataclass(frozen=True)
class RetrainConfig:
    """Training a derived architecture from scratch (the spec's "retrain" section, CNN spaces).

    drop_path_keep >= 1: no drop path; aux_weight 0: no auxiliary head. precision and
    channels_last as in `ChildConfig`.
    """

    enabled: bool = True
    top_k: int = 1
    epochs: int = 630
    batch_size: int = 144
    num_layers: int = 15
    channels: int = 36
    steps_per_epoch: int | None = None
    lr_max: float = 0.05
    lr_min: float = 0.0001
    sgdr_t0: int = 10
    sgdr_tmul: int = 2
    momentum: float = 0.9
    nesterov: bool = True
    l2: float = 0.0002
    grad_clip: float | None = 5.0
    keep_prob: float = 0.8
    drop_path_keep: float = 0.6
    aux_weight: float = 0.4
    cutout: int = 0
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        _check_precision(self.precision)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrainConfig:
        """From the spec's "retrain" section; unknown keys are ignored."""
        return from_mapping(cls, d)
