"""EvalConfig: what is hashed, the effective temperature, the first difference, validation."""

from __future__ import annotations

import pytest

from gtalign.eval import SAMPLED_TEMPERATURE, EvalConfig, EvalSetupError, config_hash


def test_temperature_is_greedy_for_one_epoch_and_sampled_for_several() -> None:
    assert EvalConfig(("sample",)).effective_temperature == 0.0
    assert EvalConfig(("sample",), epochs=3).effective_temperature == SAMPLED_TEMPERATURE
    assert EvalConfig(("sample",), epochs=3, temperature=0).effective_temperature == 0.0
    # The same effective settings are the same run, however they were given.
    assert EvalConfig(("sample",), epochs=3).hash == EvalConfig(("sample",), epochs=3, temperature=0.7).hash


def test_seeds_per_epoch_start_at_the_base_seed() -> None:
    assert [EvalConfig(("sample",), epochs=3).seed_for(e) for e in range(3)] == [0, 1, 2]
    assert [EvalConfig(("sample",), seed=10, epochs=2).seed_for(e) for e in range(2)] == [10, 11]


def test_what_cannot_change_a_record_is_not_hashed() -> None:
    base = EvalConfig(("sample",))
    assert "concurrency" not in base.to_json() and "name" not in base.to_json()
    assert EvalConfig(("sample",), concurrency=3, name="x").hash == base.hash == config_hash(base.to_json())
    assert base.header_json() == {**base.to_json(), "name": None}
    assert EvalConfig(("sample",), max_tokens=64).hash != base.hash


def test_diff_names_the_first_setting_that_differs() -> None:
    base = EvalConfig(("sample",), preset="paper", seed=1)
    assert base.diff(base) is None
    assert base.diff(EvalConfig(("sample",), preset="robust", seed=2)) == "seed: 1 vs 2"
    assert base.diff(EvalConfig(("sample",), preset="robust", seed=1)) == "preset: 'paper' vs 'robust'"
    assert base.diff(EvalConfig(("sample",), preset="paper", seed=1, name="other")) is None
    recorded = {**base.header_json(), "future_setting": 3}
    assert base.diff(recorded) == "future_setting: (not set) vs 3"
    assert base.diff({k: v for k, v in base.to_json().items() if k != "rule"}) == "rule: 'sum' vs (not set)"


def test_from_json_round_trips_a_recorded_config() -> None:
    steered = EvalConfig(("sample", "math-hard"), steer=True, pricing="research-llm-shift", pricing_params={"s": 2},
                         epochs=2, name="steered", sources=("math-hard",))
    assert EvalConfig.from_json(steered.header_json()).hash == steered.hash
    plain = EvalConfig(("sample",))
    assert EvalConfig.from_json(plain.to_json()).hash == plain.hash
    with pytest.raises(EvalSetupError, match="unknown config keys"):
        EvalConfig.from_json({**plain.to_json(), "colour": "red"})


@pytest.mark.parametrize(("changes", "message"), [
    ({"benchmarks": ()}, "benchmarks needs at least one name"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"limit": 0}, "limit must be an integer >= 1"),
    ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
    ({"prompt": "raw"}, "prompt must be one of stored, builder"),
    ({"pricing": "api-pay-per-token"}, "pricing only apply with steer=True"),
    ({"on_ignored": "keep"}, "on_ignored only apply with steer=True"),
    ({"steer": True, "on_ignored": "never"}, "on_ignored must be one of retry, default, keep"),
    ({"judge_model": "m"}, "judge_model only applies to a URL judge"),
    ({"preset_params": {"x": object()}}, r"preset_params\['x'\] is not a JSON value"),
    ({"seed": "1"}, "seed must be an integer"),
])
def test_a_setting_that_cannot_be_used_is_refused_by_name(changes: dict, message: str) -> None:
    with pytest.raises(EvalSetupError, match=message):
        EvalConfig(**{"benchmarks": ("sample",), **changes})


def test_params_are_frozen_copies() -> None:
    params = {"s": 1}
    config = EvalConfig(("sample",), steer=True, pricing="research-llm-shift", pricing_params=params)
    params["s"] = 5
    assert config.pricing_params["s"] == 1
    with pytest.raises(TypeError):
        config.pricing_params["s"] = 2  # type: ignore[index]
