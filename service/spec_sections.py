"""The override sections of a search spec (``controller``, ``child``, ``derive``, ``retrain``,
``resources``): one typed model each, with every key's type, bounds and description.

Each section holds the union of the spaces' keys (a space lacks some: ``service.spec`` refuses
those against the chosen preset). Validation is strict: an integer key takes no ``true`` and no
``1.5``, a number key takes integers but no ``NaN``/``Infinity`` (``1e999`` parses as infinity),
a string key one of its choices. The bounds admit every preset's value (``paper-*`` included) and
refuse sizes no cluster can run (e.g. ``child.channels`` 100000); what a search costs as a whole is
checked by ``service.cost``. The models are ``TypedDict``s: a validated section is a dict of the
keys given, merged onto the preset's section by ``service.spec.resolve_spec``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, with_config
from typing_extensions import TypedDict

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def _whole(value: Any) -> Any:
    """A float with no fraction as the integer it is (JSON Schema's ``integer`` admits ``2.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WHOLE = BeforeValidator(_whole)
"""Last in an integer key's ``Annotated`` (after its bounds, so the JSON Schema keeps them): the key
takes ``2`` or ``2.0``, but not ``true``, ``2.5`` or ``"2"``."""

MAX_STEPS = 100_000
"""Steps per epoch (shared model, controller) and SGDR periods: the paper's largest is 2000."""
MAX_EPOCHS = 10_000
MAX_BATCH = 4096
MAX_CHANNELS = 1024
MAX_HIDDEN = 4096


def _int(low: int, high: int, description: str) -> Any:
    return Field(ge=low, le=high, description=description)


def _num(description: str, *, gt: float | None = None, ge: float | None = None, le: float) -> Any:
    return Field(gt=gt, ge=ge, le=le, description=description)


def _unit(description: str) -> Any:
    return Field(ge=0.0, le=1.0, description=f"{description} (0 to 1)")


def _rate(description: str) -> Any:
    """A probability that must stay below 1 (a drop rate of 1 divides by zero)."""
    return Field(ge=0.0, lt=1.0, description=f"{description} (0 to below 1)")


def _keep(description: str) -> Any:
    return Field(gt=0.0, le=1.0, description=f"{description} (above 0, at most 1)")


@with_config(STRICT)
class ControllerSection(TypedDict, total=False):
    """The controller (an LSTM sampling architectures) and its REINFORCE training."""

    hidden: Annotated[int, _int(1, 2048, "LSTM hidden units"), WHOLE]
    init_range: Annotated[float, _num("uniform initialisation range of the weights", gt=0, le=10)]
    lr: Annotated[float, _num("Adam learning rate", gt=0, le=10)]
    adam_beta1: Annotated[float, Field(ge=0.0, lt=1.0, description="Adam beta1 (0 to below 1)")]
    adam_beta2: Annotated[float, Field(ge=0.0, lt=1.0, description="Adam beta2 (0 to below 1)")]
    adam_eps: Annotated[float, _num("Adam epsilon", gt=0, le=1)]
    tanh_constant: Annotated[float, _num("logits are tanh_constant * tanh(z)", gt=0, le=100)]
    op_tanh_reduce: Annotated[float, _num("op logits use tanh_constant / op_tanh_reduce (CNN)", gt=0, le=100)]
    temperature: Annotated[
        float | None, _num("logits divided by it before the tanh; null: none", gt=0, le=1000)
    ]
    op_bias: Annotated[bool, Field(description="micro's op prior [10,10,0,0,0] on the op logits")]
    entropy_weight: Annotated[float, _num("weight of the entropy bonus added to the reward", ge=0, le=10)]
    baseline_decay: Annotated[float, _unit("EMA decay of the reward baseline")]
    steps_per_epoch: Annotated[int, _int(1, MAX_STEPS, "controller updates per epoch"), WHOLE]
    archs_per_step: Annotated[int, _int(1, 1000, "architectures sampled per update"), WHOLE]
    skip_target: Annotated[float, _unit("target skip-connection density (macro's KL penalty)")]
    skip_weight: Annotated[float, _num("weight of the skip-density KL penalty", ge=0, le=100)]


class _Training(TypedDict, total=False):
    """The keys the child and retrain sections share (the model and its training)."""

    batch_size: Annotated[int, _int(1, MAX_BATCH, "training minibatch size"), WHOLE]
    channels: Annotated[int, _int(1, MAX_CHANNELS, "channels of the first cells"), WHOLE]
    steps_per_epoch: Annotated[int | None, _int(1, MAX_STEPS, "steps per epoch; null: one pass"), WHOLE]
    lr_max: Annotated[float, _num("peak SGD learning rate", gt=0, le=100)]
    lr_min: Annotated[float, _num("lowest SGDR learning rate", ge=0, le=100)]
    sgdr_t0: Annotated[int, _int(1, MAX_STEPS, "first SGDR period in epochs"), WHOLE]
    sgdr_tmul: Annotated[int, _int(1, 100, "SGDR period multiplier"), WHOLE]
    momentum: Annotated[float, _unit("SGD momentum")]
    nesterov: Annotated[bool, Field(description="Nesterov momentum")]
    l2: Annotated[float, _num("L2 weight lambda in lambda * sum(w^2)", ge=0, le=1)]
    grad_clip: Annotated[float, _num("gradient-norm clip", gt=0, le=10_000)]
    keep_prob: Annotated[float, _keep("dropout keep probability before the classifier")]
    aux_weight: Annotated[float, _num("weight of the auxiliary head's loss; 0: no aux head", ge=0, le=10)]
    cutout: Annotated[int, _int(0, 256, "cutout square size in pixels; 0: none"), WHOLE]
    precision: Annotated[Literal["fp32", "bf16"], Field(description="fp32, or bf16 autocast (GPU)")]
    channels_last: Annotated[bool, Field(description="channels-last memory format (GPU)")]
    hidden_size: Annotated[int, _int(1, MAX_HIDDEN, "recurrent hidden and embedding size (rnn)"), WHOLE]
    bptt: Annotated[int, _int(1, 1000, "backpropagation-through-time length (rnn)"), WHOLE]
    lr_decay: Annotated[float, _keep("learning-rate factor per epoch (rnn)")]
    lr_decay_start: Annotated[int, _int(0, MAX_EPOCHS, "epoch the decay starts at (rnn)"), WHOLE]
    dropout_input: Annotated[float, _rate("input drop rate (rnn)")]
    dropout_hidden: Annotated[float, _rate("hidden drop rate (rnn)")]
    dropout_output: Annotated[float, _rate("output drop rate (rnn)")]


@with_config(STRICT)
class ChildSection(_Training, total=False):
    """The shared model trained during the search (CNN spaces; rnn: the recurrent keys)."""

    num_layers: Annotated[int, _int(1, 64, "layers (cells) of the shared network"), WHOLE]
    num_nodes: Annotated[int, _int(1, 32, "computed nodes per cell (micro, rnn)"), WHOLE]
    num_blocks: Annotated[int, _int(1, 16, "blocks per cell (nasnet)"), WHOLE]
    reward_batch: Annotated[int, _int(1, MAX_BATCH, "validation batch size of the reward"), WHOLE]
    bn_mode: Annotated[Literal["train", "eval"], Field(description="BatchNorm mode of the reward pass")]
    reward_c: Annotated[float, _num("reward = reward_c / validation perplexity (rnn)", gt=0, le=1e6)]


@with_config(STRICT)
class DeriveSection(TypedDict, total=False):
    """Choosing the final architectures after the search."""

    num_samples: Annotated[int, _int(1, 10_000, "architectures sampled and scored"), WHOLE]
    top_k: Annotated[int, _int(1, 1000, "best ones kept (at most num_samples)"), WHOLE]


@with_config(STRICT)
class RetrainSection(_Training, total=False):
    """Retraining the best derived architectures from scratch (the child's keys, retraining values)."""

    enabled: Annotated[bool, Field(description="retrain after the search")]
    top_k: Annotated[int, _int(1, 100, "derived architectures retrained (at most derive.top_k)"), WHOLE]
    epochs: Annotated[int, _int(1, MAX_EPOCHS, "retraining epochs"), WHOLE]
    num_layers: Annotated[int, _int(1, 64, "layers (cells) of the final network (micro, nasnet)"), WHOLE]
    drop_path_keep: Annotated[float, _keep("drop-path keep probability")]


RAY_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
RESOURCE_NAME = r"^[A-Za-z_][A-Za-z0-9_:.-]{0,99}$"


def _custom_name(name: str) -> str:
    if name in RAY_BUILTIN_RESOURCES:
        raise ValueError(f"{name} is not a custom resource name (CPU, GPU and memory have their own keys)")
    return name


ResourceName = Annotated[str, Field(pattern=RESOURCE_NAME), AfterValidator(_custom_name)]
CustomResources = Annotated[
    dict[ResourceName, Annotated[float, Field(gt=0, le=10_000)]],
    Field(
        max_length=16,
        description="Ray custom resources (name -> amount above 0, at most 10000; at most 16) this role "
        "also asks for, which places it on the nodes that offer them; {}: anywhere it fits",
        json_schema_extra={
            "propertyNames": {"pattern": RESOURCE_NAME, "not": {"enum": list(RAY_BUILTIN_RESOURCES)}}
        },
    ),
]


@with_config(STRICT)
class ResourcesSection(TypedDict, total=False):
    """What each role of the search asks Ray for."""

    num_cpus: Annotated[float, _num("CPUs of the shared-model actor", gt=0, le=1024)]
    num_gpus: Annotated[
        float, _num("GPUs of the shared-model actor and each retraining (fractions allowed)", ge=0, le=64)
    ]
    device: Annotated[
        Literal["auto", "cpu", "cuda"], Field(description="torch device; auto: cuda when a GPU is given")
    ]
    tensorboard: Annotated[bool, Field(description="also write TensorBoard event files")]
    shared: CustomResources
    controller: CustomResources
    retrain: CustomResources
