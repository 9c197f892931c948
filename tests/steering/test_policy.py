"""Pricing policies: presets and the economic model flip decisions on known matrices; loading and errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gtalign._registry import REGISTRY
from gtalign.game import DEFAULT_SPACE, PayoffMatrix, StrategySpace, decide, llm_price_shift, user_price_shift
from gtalign.steering import (
    EXAMPLES_DIR,
    AffinePolicy,
    EconomicPolicy,
    IdentityPolicy,
    PolicyError,
    ResearchShiftPolicy,
    check_policy,
    estimate_output_tokens,
    load_policy,
)
from tests.steering._fixtures import LLM_SHIFT_FLIPS, PAYER_FLIPS, USER_SHIFT_FLIPS

ROLLOUTS = Path(EXAMPLES_DIR).parent / "rollouts.jsonl"


def choice(policy, matrix: PayoffMatrix, rule: str = "sum", row: str | None = "DQ") -> str:
    return decide(policy.transform(matrix), rule, question_type=row).key


# --- presets flip the chosen action --------------------------------------------------------------

def test_identity_keeps_the_matrix():
    policy = load_policy("none")
    assert isinstance(policy, IdentityPolicy) and policy.is_identity
    assert policy.transform(LLM_SHIFT_FLIPS) is LLM_SHIFT_FLIPS


def test_research_llm_shift_flips_da_to_aq():
    assert decide(LLM_SHIFT_FLIPS, "sum", question_type="DQ").key == "DQ_DA"
    assert choice(load_policy("research-llm-shift", s=1), LLM_SHIFT_FLIPS) == "DQ_AQ"


def test_research_user_shift_flips_cq_to_da():
    assert decide(USER_SHIFT_FLIPS, "sum", question_type="DQ").key == "DQ_CQ"
    assert choice(load_policy("research-user-shift", s=-1), USER_SHIFT_FLIPS) == "DQ_DA"


@pytest.mark.parametrize("side, build", [("llm", llm_price_shift), ("user", user_price_shift)])
@pytest.mark.parametrize("s", [-2.0, -0.5, 0.0, 1.0, 3.0])
def test_research_presets_are_the_game_shifts(side, build, s):
    policy = ResearchShiftPolicy(side=side, s=s)
    assert policy.transform(LLM_SHIFT_FLIPS) == build(s).apply(LLM_SHIFT_FLIPS)
    assert policy.kind == f"research-{side}-shift"
    assert load_policy(policy.to_dict()).transform(USER_SHIFT_FLIPS) == policy.transform(USER_SHIFT_FLIPS)


def test_affine_example_file_flips_to_the_promoted_action():
    policy = load_policy(EXAMPLES_DIR / "free-follow-ups.json")
    assert isinstance(policy, AffinePolicy)
    matrix = PayoffMatrix.from_arrays(user=[[3.0, 1.0, 2.6], [1, 1, 1]], llm=[[3.0, 1.0, 2.8], [1, 1, 1]])
    assert decide(matrix, "sum", question_type="DQ").key == "DQ_DA"
    assert choice(policy, matrix) == "DQ_AQ"


def test_legacy_registry_shift_names_become_policies():
    policy = load_policy("llm_price_shift", s=1)
    assert isinstance(policy, AffinePolicy)
    assert policy.transform(LLM_SHIFT_FLIPS) == llm_price_shift(1).apply(LLM_SHIFT_FLIPS)


# --- the economic model ----------------------------------------------------------------------------

def economic(billing: str, **extra) -> EconomicPolicy:
    return EconomicPolicy(
        name=billing, billing=billing, price_per_1k_output=0.015,
        output_tokens={"DA": 400, "CQ": 50, "AQ": 150}, payoff_per_currency=250, **extra,
    )


def test_economic_formula_charges_the_payer():
    per_token, flat = economic("pay-per-token"), economic("subscription")
    assert per_token.penalty("DA") == pytest.approx(400 * 0.015 / 1000 * 250)
    raw, a, b = PAYER_FLIPS["DQ_DA"], per_token.transform(PAYER_FLIPS)["DQ_DA"], flat.transform(PAYER_FLIPS)["DQ_DA"]
    assert (a.user, a.llm) == pytest.approx((raw.user - 1.5, raw.llm))
    assert (b.user, b.llm) == pytest.approx((raw.user, raw.llm - 1.5))
    half = economic("split", user_share=0.5).transform(PAYER_FLIPS)["DQ_DA"]
    assert (half.user, half.llm) == pytest.approx((raw.user - 0.75, raw.llm - 0.75))


def test_input_tokens_add_to_the_cost():
    policy = economic("pay-per-token", price_per_1k_input=0.005, input_tokens={"CQ": 1000})
    assert policy.cost("CQ") == pytest.approx((1000 * 0.005 + 50 * 0.015) / 1000)
    assert policy.cost("DA") == pytest.approx(400 * 0.015 / 1000)


def test_who_pays_flips_da_and_aq_under_cobb_douglas():
    assert decide(PAYER_FLIPS, "cobb_douglas", question_type="DQ").key == "DQ_DA"
    assert choice(economic("pay-per-token"), PAYER_FLIPS, "cobb_douglas") == "DQ_DA"
    assert choice(economic("subscription"), PAYER_FLIPS, "cobb_douglas") == "DQ_AQ"


def test_who_pays_does_not_matter_to_the_sum_rule():
    per_token = economic("pay-per-token").transform(PAYER_FLIPS)
    flat = economic("subscription").transform(PAYER_FLIPS)
    for key in PAYER_FLIPS.keys:
        assert per_token[key].user + per_token[key].llm == pytest.approx(flat[key].user + flat[key].llm)


def test_higher_prices_push_away_from_long_answers():
    matrix = PayoffMatrix.from_arrays(user=[[3.0, 1.0, 2.8], [1, 1, 1]], llm=[[3.0, 1.0, 2.9], [1, 1, 1]])
    priced = economic("pay-per-token", decimals=2)
    assert choice(priced, matrix) == "DQ_AQ"
    assert choice(replace(priced, payoff_per_currency=0), matrix) == "DQ_DA"


def test_shipped_economic_examples_differ_only_in_who_pays():
    per_token, flat = load_policy("api-pay-per-token"), load_policy("subscription")
    assert per_token.billing == "pay-per-token" and flat.billing == "subscription"
    assert per_token.output_tokens == flat.output_tokens
    assert choice(per_token, PAYER_FLIPS, "cobb_douglas") == "DQ_DA"


def test_unpriced_action_is_an_error_not_a_free_action():
    space = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))
    with pytest.raises(PolicyError, match="REFUSE"):
        check_policy(economic("pay-per-token"), space)
    check_policy(economic("pay-per-token"), DEFAULT_SPACE)


def test_estimate_output_tokens_from_rollouts():
    from gtalign.data import read_jsonl

    estimate = estimate_output_tokens(read_jsonl(ROLLOUTS))
    assert set(estimate.means) == {"DA", "CQ", "AQ"}
    assert sum(estimate.counts.values()) == 12 and estimate.skipped == 0
    words = estimate_output_tokens(read_jsonl(ROLLOUTS), count=lambda t: len(t.split()), part="response")
    assert all(0 < words.means[a] < estimate.means[a] for a in words.means)


def test_estimate_skips_completions_without_a_response():
    done = "<thinking>t</thinking><payoff>{}</payoff><analyze>a</analyze><response>Paris is the capital.</response>"
    estimate = estimate_output_tokens(["no blocks at all", {"completion": done}, {"other": 1}], count=len)
    assert dict(estimate.means) == {"DA": float(len(done))}
    assert estimate.skipped == 2


def test_policy_file_can_estimate_tokens_from_rows():
    policy = load_policy("team-plan-split")
    assert policy.billing == "split" and policy.share == 0.3
    assert set(policy.output_tokens) == {"DA", "CQ", "AQ"}


# --- loading and errors ------------------------------------------------------------------------

def test_every_registered_pricing_name_loads():
    params = {"llm_price_shift": {"s": 1}, "user_price_shift": {"s": 1},
              "affine": {"user_offset": {"AQ": 1}},
              "economic": {"price_per_1k_output": 1, "output_tokens": {"DA": 1, "CQ": 1, "AQ": 1}}}
    for name in REGISTRY.names("pricing"):
        policy = load_policy(name, **params.get(name, {}))
        check_policy(policy, DEFAULT_SPACE)
        assert json.loads(json.dumps(policy.to_dict()))["kind"] == policy.kind


def test_every_example_file_loads_and_round_trips():
    files = sorted(Path(EXAMPLES_DIR).iterdir())
    assert len(files) >= 4
    for path in files:
        policy = load_policy(path)
        assert policy.description
        again = load_policy(policy.to_dict())
        assert again.transform(PAYER_FLIPS) == policy.transform(PAYER_FLIPS)


def test_file_params_override_keys(tmp_path):
    policy = load_policy(EXAMPLES_DIR / "api-pay-per-token.yaml", billing="subscription")
    assert policy.billing == "subscription"


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(PolicyError, match="api-pay-per-token.*research-llm-shift|research-llm-shift.*api-pay-per-token"):
        load_policy("no-such-policy")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, text, key, message",
    [
        ("bad-kind.yaml", "kind: surge\n", "kind", "must be one of"),
        ("typo.yaml", "kind: economic\nprice_per_1k_output: 1\noutput_tokens: {DA: 1}\nbiling: split\n", "biling",
         "unknown key"),
        ("no-tokens.yaml", "kind: economic\nprice_per_1k_output: 1\n", "output_tokens", "required"),
        ("no-price.json", '{"kind": "economic", "output_tokens": {"DA": 1}}', "price_per_1k_output", "required"),
        ("share.yaml", "kind: economic\nprice_per_1k_output: 1\noutput_tokens: {DA: 1}\nbilling: split\n", "user_share",
         "needs user_share"),
        ("share-range.yaml", "kind: economic\nprice_per_1k_output: 1\noutput_tokens: {DA: 1}\nbilling: split\n"
         "user_share: 1.5\n", "user_share", r"\[0, 1\]"),
        ("negative.yaml", "kind: economic\nprice_per_1k_output: -1\noutput_tokens: {DA: 1}\n", "price_per_1k_output", ">= 0"),
        ("tokens.yaml", "kind: economic\nprice_per_1k_output: 1\noutput_tokens: {DA: lots}\n", "output_tokens.DA",
         "finite number"),
        ("billing.yaml", "kind: economic\nprice_per_1k_output: 1\noutput_tokens: {DA: 1}\nbilling: monthly\n", "billing",
         "pay-per-token"),
        ("s.yaml", "kind: research-llm-shift\ns: big\n", "s", "finite number"),
        ("affine.json", '{"kind": "affine", "user_offset": {"AQ": "x"}}', "user_offset", "finite number"),
        ("name.yaml", "kind: none\nname: 3\n", "name", "string"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path, name, text, key, message):
    path = write(tmp_path, name, text)
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(path)
    assert caught.value.source == str(path) and caught.value.key == key
    assert str(path) in str(caught.value) and repr(key) in str(caught.value)


def test_syntax_errors_name_the_file_and_the_line(tmp_path):
    yaml_file = write(tmp_path, "broken.yaml", "kind: economic\noutput_tokens: {DA: 1\n")
    with pytest.raises(PolicyError, match=r"broken\.yaml: not valid YAML at line \d+"):
        load_policy(yaml_file)
    json_file = write(tmp_path, "broken.json", '{"kind": "none",\n}')
    with pytest.raises(PolicyError, match=r"broken\.json: not valid JSON at line 2"):
        load_policy(json_file)
    not_a_mapping = write(tmp_path, "list.yaml", "- kind: none\n")
    with pytest.raises(PolicyError, match="list.yaml: a policy must be a mapping"):
        load_policy(not_a_mapping)


def test_missing_file_and_missing_rows_file(tmp_path):
    with pytest.raises(PolicyError, match="nope.yaml: no such pricing policy file"):
        load_policy(tmp_path / "nope.yaml")
    rows = write(tmp_path, "est.yaml", "kind: economic\nprice_per_1k_output: 1\noutput_tokens: {from_rows: gone.jsonl}\n")
    with pytest.raises(PolicyError, match="gone.jsonl") as caught:
        load_policy(rows)
    assert caught.value.key == "output_tokens.from_rows"


def test_a_ready_policy_takes_no_parameters():
    with pytest.raises(PolicyError, match="no parameters"):
        load_policy(IdentityPolicy(), s=1)
