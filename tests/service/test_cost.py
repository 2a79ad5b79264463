"""The cost estimate of a search (service/cost.py): every preset fits the default limit, the sizes
move it as the formula says."""

from __future__ import annotations

import pytest

from service import cost, presets
from service.settings import Settings
from service.spec import SearchSpec, resolve_spec


def estimate(**spec: object) -> dict[str, float]:
    return cost.estimate(resolve_spec(SearchSpec(**spec)))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_fits_the_default_limit(name: str, tmp_path: object) -> None:
    e = estimate(preset=name)
    assert (
        0 < e["search_macs"] and 0 < e["retrain_macs"] and e["macs"] == e["search_macs"] + e["retrain_macs"]
    )
    assert e["macs"] <= Settings(home=tmp_path).max_cost  # type: ignore[arg-type]


def test_sizes_move_the_estimate() -> None:
    base = estimate(space="micro")
    wider = estimate(space="micro", child={"channels": 32})  # 16 -> 32 channels: 4x the search
    assert wider["search_macs"] == pytest.approx(4 * base["search_macs"])
    assert wider["retrain_macs"] == base["retrain_macs"]
    longer = estimate(space="micro", retrain={"epochs": 20})  # 10 -> 20 epochs
    assert longer["retrain_macs"] == pytest.approx(2 * base["retrain_macs"])
    assert estimate(space="micro", retrain={"enabled": False})["retrain_macs"] == 0
    rnn = estimate(space="rnn")
    assert rnn["search_macs"] < estimate(space="rnn", child={"hidden_size": 64})["search_macs"]
    absurd = estimate(space="micro", child={"channels": 1024, "num_layers": 64, "steps_per_epoch": 100_000})
    assert absurd["macs"] > Settings().max_cost
