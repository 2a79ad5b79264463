"""SearchSpec validation, preset resolution, and the data-folder check at submit time."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from service import presets
from service.errors import InvalidInput
from service.spec import CIFAR_FILES, PTB_FILES, SearchSpec, check_data_dir, resolve_spec


def errors_of(**spec: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as e:
        SearchSpec(**spec)
    return [(err["loc"], err["msg"]) for err in e.value.errors()]


@pytest.mark.parametrize("space", ["micro", "macro", "rnn"])
def test_default_preset_per_space(space: str) -> None:
    resolved = resolve_spec(SearchSpec(space=space))  # type: ignore[arg-type]
    demo = presets.PRESETS[f"demo-{space}"]
    assert resolved["preset"] == f"demo-{space}" and resolved["space"] == space
    assert resolved["dataset"] == {"micro": "digits", "macro": "digits", "rnn": "synthetic-ptb"}[space]
    assert resolved["epochs"] == demo["epochs"] and resolved["seed"] == 0 and resolved["name"] is None
    for section in presets.SECTIONS:
        assert resolved[section] == demo[section]


def test_overrides_merge_and_numbers_keep_their_type() -> None:
    spec = SearchSpec(
        space="micro",
        epochs=2,
        seed=5,
        name="x",
        child={"channels": 4, "lr_max": 1},
        controller={"temperature": 2, "archs_per_step": 3},
        resources={"num_gpus": 0.5},
    )
    resolved = resolve_spec(spec)
    assert (resolved["epochs"], resolved["seed"], resolved["name"]) == (2, 5, "x")
    assert resolved["child"]["channels"] == 4 and resolved["child"]["num_layers"] == 3
    assert resolved["child"]["lr_max"] == 1.0 and isinstance(resolved["child"]["lr_max"], float)
    assert resolved["controller"]["temperature"] == 2 and resolved["controller"]["archs_per_step"] == 3
    assert resolved["resources"]["num_gpus"] == 0.5
    assert resolve_spec(SearchSpec(preset="paper-ptb"))["space"] == "rnn"


def test_paper_presets_carry_the_published_numbers() -> None:
    micro, macro, ptb = (
        presets.PRESETS[n] for n in ("paper-cifar10-micro", "paper-cifar10-macro", "paper-ptb")
    )
    c, ch, r = micro["controller"], micro["child"], micro["retrain"]
    assert (c["lr"], c["steps_per_epoch"], c["archs_per_step"], c["entropy_weight"]) == (0.0035, 30, 10, 1e-4)
    assert (c["tanh_constant"], c["op_tanh_reduce"], c["baseline_decay"], c["adam_eps"]) == (
        1.1,
        2.5,
        0.99,
        1e-3,
    )
    assert (micro["epochs"], ch["batch_size"], ch["num_layers"], ch["channels"], ch["l2"]) == (
        150,
        160,
        6,
        20,
        1e-4,
    )
    assert (ch["sgdr_t0"], ch["sgdr_tmul"], ch["nesterov"], ch["momentum"], ch["lr_min"]) == (
        10,
        2,
        True,
        0.9,
        5e-4,
    )
    assert (r["epochs"], r["batch_size"], r["num_layers"], r["channels"], r["drop_path_keep"]) == (
        630,
        144,
        15,
        36,
        0.6,
    )
    mc, mch = macro["controller"], macro["child"]
    assert (mc["lr"], mc["steps_per_epoch"], mc["archs_per_step"], mc["tanh_constant"]) == (1e-3, 50, 20, 1.5)
    assert (macro["epochs"], mch["batch_size"], mch["num_layers"], mch["channels"], mch["l2"]) == (
        310,
        128,
        12,
        36,
        2.5e-4,
    )
    assert (macro["retrain"]["channels"], macro["retrain"]["keep_prob"]) == (96, 0.5)
    pc, pch = ptb["controller"], ptb["child"]
    assert (pc["lr"], pc["hidden"], pc["temperature"], pc["tanh_constant"], pc["entropy_weight"]) == (
        3.5e-4,
        100,
        5.0,
        2.5,
        1e-4,
    )
    assert (pch["lr_max"], pch["lr_decay"], pch["lr_decay_start"], pch["grad_clip"], pch["l2"]) == (
        20.0,
        0.96,
        15,
        0.25,
        1e-7,
    )
    assert (ptb["epochs"], pch["bptt"], pch["batch_size"], pch["reward_c"], pch["num_nodes"]) == (
        150,
        35,
        64,
        80.0,
        12,
    )
    for preset in presets.PRESETS.values():
        assert preset["notes"] and all(isinstance(n, str) for n in preset["notes"])


def test_demo_micro_is_small() -> None:
    demo = presets.PRESETS["demo-micro"]
    assert (
        demo["epochs"],
        demo["child"]["num_layers"],
        demo["child"]["channels"],
        demo["child"]["batch_size"],
    ) == (8, 3, 16, 64)
    assert (demo["derive"]["num_samples"], demo["derive"]["top_k"], demo["retrain"]["epochs"]) == (20, 3, 10)


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_presets_validate_against_themselves(name: str) -> None:
    preset = presets.PRESETS[name]
    spec = SearchSpec(preset=name, **{s: preset[s] for s in presets.SECTIONS})
    assert resolve_spec(spec)[presets.SECTIONS[0]] == preset[presets.SECTIONS[0]]


def test_unknown_key_names_the_field() -> None:
    [(loc, msg)] = errors_of(space="micro", child={"foo": 1})  # no space has it: the type refuses it
    assert loc == ("child", "foo") and "Extra inputs" in msg
    [(loc, msg)] = errors_of(space="micro", child={"hidden_size": 32})  # rnn's, not micro's
    assert loc == ("child", "hidden_size") and "child.hidden_size" in msg and "channels" in msg
    [(loc, _)] = errors_of(space="rnn", retrain={"num_layers": 3})
    assert loc == ("retrain", "num_layers")


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"channels": 1.5}, "valid integer"),
        ({"channels": True}, "valid integer"),
        ({"nesterov": 1}, "valid boolean"),
        ({"keep_prob": 2}, "less than or equal to 1"),
        ({"steps_per_epoch": 0}, "greater than or equal to 1"),
        ({"lr_max": -1}, "greater than 0"),
        ({"lr_max": float("nan")}, "finite number"),
        ({"lr_max": float("inf")}, "finite number"),
        ({"bn_mode": "x"}, "'train' or 'eval'"),
        ({"channels": None}, "valid integer"),
        ({"cutout": -1}, "greater than or equal to 0"),
        ({"channels": 100_000}, "less than or equal to 1024"),
        ({"num_layers": 1000}, "less than or equal to 64"),
        ({"num_nodes": 10**6}, "less than or equal to 32"),
        ({"batch_size": 10**9}, "less than or equal to 4096"),
        ({"steps_per_epoch": 10**12}, "less than or equal to 100000"),
    ],
)
def test_override_types_and_ranges(override: dict[str, Any], problem: str) -> None:
    [(loc, msg)] = errors_of(space="micro", child=override)
    assert loc == ("child", next(iter(override))) and problem in msg


@pytest.mark.parametrize(
    ("section", "override", "problem"),
    [
        ("controller", {"hidden": 10**9}, "less than or equal to 2048"),
        ("controller", {"steps_per_epoch": 10**12}, "less than or equal to 100000"),
        ("controller", {"adam_beta2": 1.0}, "less than 1"),
        ("derive", {"num_samples": 10**12}, "less than or equal to 10000"),
        ("retrain", {"epochs": 10**9}, "less than or equal to 10000"),
        ("retrain", {"epochs": True}, "valid integer"),
        ("resources", {"num_gpus": -1}, "greater than or equal to 0"),
        ("resources", {"device": "tpu"}, "'auto', 'cpu' or 'cuda'"),
    ],
)
def test_absurd_sizes_are_refused_in_every_section(
    section: str, override: dict[str, Any], problem: str
) -> None:
    [(loc, msg)] = errors_of(space="micro", **{section: override})
    assert loc == (section, next(iter(override))) and problem in msg


def test_every_key_is_typed_and_described() -> None:
    for section in presets.SECTIONS:
        described = SearchSpec.model_json_schema()["$defs"]
        properties = described[f"{section.capitalize()}Section"]["properties"]
        for preset in presets.PRESETS.values():
            assert set(preset[section]) <= set(properties), (section, set(preset[section]) - set(properties))
        assert all(p.get("description") for p in properties.values()), section


def test_other_invalid_specs() -> None:
    assert errors_of(space="rnn", dataset="digits")[0][0] == ("dataset",)
    assert errors_of(space="micro", dataset="ptb")[0][0] == ("dataset",)
    assert errors_of(preset="nope")[0][0] == ("preset",)
    assert errors_of(space="micro", preset="paper-ptb")[0][0] == ("preset",)
    assert errors_of()[0][0] == ("space",)
    assert errors_of(space="micro", epochs=0)[0][0] == ("epochs",)
    assert errors_of(space="micro", foo=1)[0][0] == ("foo",)
    assert errors_of(space="micro", derive={"top_k": 50})[0][0] == ("derive", "top_k")
    assert errors_of(space="micro", dataset="imagenet")[0][0] == ("dataset",)


def write_cifar(folder: Path, skip: str | None = None) -> None:
    """A tiny CIFAR-10 python folder in the real format (protocol-2 pickles, bytes keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES:
        if name == skip:
            continue
        if name == "batches.meta":
            obj: dict[bytes, Any] = {b"label_names": [b"airplane"] * 10, b"num_vis": 3072}
        else:
            obj = {
                b"batch_label": name.encode(),
                b"labels": [1, 2],
                b"data": rng.integers(0, 255, (2, 3072), dtype=np.uint8),
            }
        (folder / name).write_bytes(pickle.dumps(obj, protocol=2))


def write_ptb(folder: Path, skip: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in PTB_FILES:
        if name != skip:
            (folder / name).write_text(" the cat sat on the <unk> \n N years ago \n")


def test_cifar_layouts(tmp_path: Path) -> None:
    write_cifar(tmp_path / "a" / "cifar-10-batches-py")
    write_cifar(tmp_path / "b")
    for folder in ("a", "b", "a/cifar-10-batches-py"):
        spec = {"dataset": "cifar10", "data_dir": str(tmp_path / folder)}
        assert check_data_dir(spec, None) == tmp_path / folder
    write_cifar(tmp_path / "c" / "cifar-10-batches-py", skip="test_batch")
    with pytest.raises(InvalidInput) as e:
        check_data_dir({"dataset": "cifar10", "data_dir": str(tmp_path / "c")}, None)
    assert (
        e.value.field == "data_dir" and "test_batch" in e.value.message and "data_batch_1" in e.value.message
    )
    write_cifar(tmp_path / "d")
    (tmp_path / "d" / "data_batch_3").write_text("not a pickle")
    with pytest.raises(InvalidInput, match="data_batch_3 is not in the expected format"):
        check_data_dir({"dataset": "cifar10", "data_dir": str(tmp_path / "d")}, None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="lacks data_batch_1"):
        check_data_dir({"dataset": "cifar10", "data_dir": str(tmp_path / "empty")}, None)


def test_ptb_layout(tmp_path: Path) -> None:
    write_ptb(tmp_path / "ok")
    assert check_data_dir({"dataset": "ptb", "data_dir": str(tmp_path / "ok")}, None) == tmp_path / "ok"
    write_ptb(tmp_path / "bad", skip="ptb.valid.txt")
    with pytest.raises(
        InvalidInput, match=r"lacks ptb\.valid\.txt; expected a folder holding ptb\.train\.txt"
    ):
        check_data_dir({"dataset": "ptb", "data_dir": str(tmp_path / "bad")}, None)


def test_default_data_folder_is_checked_only_when_present(tmp_path: Path) -> None:
    spec = {"dataset": "ptb", "data_dir": None}
    assert check_data_dir(spec, tmp_path) is None  # <root>/ptb absent: the worker decides
    assert check_data_dir({"dataset": "ptb", "data_dir": str(tmp_path / "elsewhere")}, None) is None
    assert check_data_dir({"dataset": "digits", "data_dir": None}, tmp_path) is None
    write_ptb(tmp_path / "ptb", skip="ptb.test.txt")
    with pytest.raises(InvalidInput, match="ptb.test.txt"):
        check_data_dir(spec, tmp_path)


def test_shared_real_copies_pass(tmp_path: Path) -> None:
    ptb_mini = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb-mini"
    if not ptb_mini.is_dir():
        pytest.skip("no shared ptb-mini copy on this machine")
    assert check_data_dir({"dataset": "ptb", "data_dir": str(ptb_mini)}, None) == ptb_mini


def test_custom_resources_per_role_are_stored_and_checked() -> None:
    spec = SearchSpec(space="micro", resources={"shared": {"node_a": 0.01}, "retrain": {"gpu_box": 1}})
    resolved = resolve_spec(spec)
    assert resolved["resources"]["shared"] == {"node_a": 0.01}
    assert resolved["resources"]["controller"] == {}
    assert resolved["resources"]["retrain"] == {"gpu_box": 1}
    for bad, words in [
        ({"shared": {"GPU": 1}}, "not a custom resource name"),
        ({"shared": {"a b": 1}}, "should match pattern"),
        ({"controller": {"ctl": 0}}, "greater than 0"),
        ({"controller": {"ctl": True}}, "valid number"),
        ({"controller": {"ctl": float("nan")}}, "finite number"),
        ({"retrain": [1]}, "valid dictionary"),
        ({"retrain": {f"r{i}": 1 for i in range(17)}}, "at most 16 items"),
    ]:
        with pytest.raises(ValidationError) as caught:
            SearchSpec(space="micro", resources=bad)
        error = caught.value.errors()[0]
        assert error["loc"][0] == "resources" and words in error["msg"], (bad, error["msg"])
