"""The registry of spaces (timm-style): every plugin under enas_core/zoo/ is complete and each of its
pieces works on a tiny CPU case; a new folder with a PLUGIN is discovered without editing anything."""

from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import enas_core.spaces as spaces
from enas_core.codegen import network_config
from enas_core.controller import Controller
from enas_core.drawing import Column
from enas_core.export import build_child, example_inputs
from enas_core.genotype import Genotype
from enas_core.registry import final_model, shared_model
from enas_core.spaces import GenotypeError, SpacePlugin, get_plugin, get_space, list_spaces, load
from service.presets import get_preset
from tests.core.conftest import demo_params


def _tokens(space: spaces.Space, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(d.choices) for d in space.decisions]


def test_plugins_are_discovered_in_order() -> None:
    plugins = spaces.PLUGINS
    assert list(plugins) == list_spaces() and {"micro", "macro", "rnn"} <= set(plugins)
    assert [p.order for p in plugins.values()] == sorted(p.order for p in plugins.values())
    for name, plugin in plugins.items():
        assert plugin.name == name and plugin.space.startswith(f"enas_core.zoo.{name}.")
        assert spaces.SPACES[name] is load(plugin.space) and load(plugin.space).name == name
    with pytest.raises(GenotypeError, match="unknown search space"):
        get_plugin("no-such-space")


def test_a_new_folder_with_a_plugin_is_a_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a space is adding a folder: a package with a PLUGIN next to the others is listed."""
    import enas_core.zoo

    folder = tmp_path / "toy"
    folder.mkdir()
    micro = get_plugin("micro")
    (folder / "__init__.py").write_text(
        textwrap.dedent(f"""
            from enas_core.spaces.plugin import SpacePlugin

            PLUGIN = SpacePlugin(
                name="toy", order=99, task="image", space={micro.space!r}, spec_params=(),
                default_preset="demo-micro", presets={micro.presets!r},
                network_config={micro.network_config!r}, draw={micro.draw!r},
                text_lines={micro.text_lines!r}, controller={micro.controller!r},
                export_modules={micro.export_modules!r},
            )
        """)
    )
    monkeypatch.setattr(enas_core.zoo, "__path__", [*enas_core.zoo.__path__, str(tmp_path)])
    spaces._plugins.cache_clear()
    spaces._space_classes.cache_clear()
    try:
        assert list_spaces()[-1] == "toy" and get_plugin("toy").order == 99
    finally:
        monkeypatch.undo()
        spaces._plugins.cache_clear()
        spaces._space_classes.cache_clear()
        sys.modules.pop("enas_core.zoo.toy", None)
    assert "toy" not in list_spaces()


def test_a_plugin_names_a_known_task() -> None:
    with pytest.raises(ValueError, match="task"):
        SpacePlugin("x", 0, "audio", "m:a", (), "p", "m:a", "m:a", "m:a", "m:a", "m:a", ("m",))


@pytest.mark.parametrize("name", list_spaces())
def test_plugin_pieces_load_and_agree(name: str) -> None:
    plugin = get_plugin(name)
    presets: dict[str, dict[str, Any]] = load(plugin.presets)
    assert plugin.default_preset in presets and all(p["space"] == name for p in presets.values())
    space = get_space(name, **demo_params(name))
    assert set(demo_params(name)) <= set(space.params) and set(plugin.spec_params) <= set(space.params)
    tokens = _tokens(space)
    columns = load(plugin.draw)(space, tokens)
    assert columns and all(isinstance(c, Column) and c.boxes for c in columns)
    lines = load(plugin.text_lines)(space.structured(tokens))
    assert lines and all(isinstance(line, str) for line in lines)
    if plugin.known is not None:
        for known in load(plugin.known).values():
            get_space(name).validate(known)
    optional = (plugin.shared_model, plugin.final_model, plugin.retrainer)
    for ref in (plugin.controller, plugin.trainer, *(r for r in optional if r is not None)):
        assert callable(load(ref))


@pytest.mark.parametrize("name", list_spaces())
def test_tiny_search_step_and_final_child_per_space(name: str) -> None:
    """The controller samples valid tokens; the image task's shared model runs forward and backward
    on them with finite gradients; the final child (the exported code) runs on its example input."""
    torch.manual_seed(0)
    plugin = get_plugin(name)
    space = get_space(name, **demo_params(name))
    controller = Controller(space, generator=torch.Generator().manual_seed(0))
    assert type(controller) is load(plugin.controller)
    tokens = controller.sample(2, torch.Generator().manual_seed(1)).tokens.tolist()
    for row in tokens:
        space.validate(row)
    spec = get_preset(plugin.default_preset)
    network = network_config(Genotype.of(space, tokens[0]), spec)
    child = build_child(Genotype.of(space, tokens[0]), network).eval()
    with torch.no_grad():
        out = child(*example_inputs(network))
    logits = out[0] if isinstance(out, tuple) else out
    assert torch.isfinite(logits).all()
    if plugin.task != "image":
        return
    from enas_core.configs import ChildConfig, RetrainConfig
    from enas_core.data.synthetic import synthetic_cifar

    data = synthetic_cifar(seed=0, num_train=8, num_valid=4, num_test=4, image_size=8)
    cfg = ChildConfig.from_dict({**spec["child"], "channels": 4, "num_layers": 2, "aux_weight": 0.0})
    model = shared_model(space)(space, cfg, data)
    x = data.train_x[:4]  # (4, C, 8, 8)
    model(x, tokens[0]).logsumexp(dim=1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    retrain = RetrainConfig.from_dict({**spec["retrain"], "channels": 4, "num_layers": 2})
    final = final_model(space)(space, tokens[1], retrain, data).eval()
    with torch.no_grad():
        assert final(x).shape == (4, data.num_classes)
