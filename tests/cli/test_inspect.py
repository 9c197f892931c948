"""``gtalign inspect``: raw text, stdin and JSONL rows; the table, the choice, problems, --json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gtalign.cli import main
from gtalign.cli._score import example_rollouts

PAYOFF = (
    '{"DQ_AQ": {"LLM": 2.0, "user": 2.1}, "DQ_CQ": {"LLM": 1.0, "user": 0.9}, "DQ_DA": {"LLM": 3.0, "user": 3.1}, '
    '"VQ_AQ": {"LLM": 1.5, "user": 1.4}, "VQ_CQ": {"LLM": 0.5, "user": 0.4}, "VQ_DA": {"LLM": 1.0, "user": 1.1}}'
)
GOOD = (
    "<thinking>A definite question; answer directly.</thinking>\n"
    f"<payoff>{PAYOFF}</payoff>\n"
    "<analyze>DQ_DA dominates the other cells. Chosen key: DQ_DA.</analyze>\n"
    "<response>It is 4.</response>"
)


def inspect_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_good_answer_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "answer.txt"
    path.write_text(GOOD, encoding="utf-8")
    data = inspect_json([str(path)], capsys)
    assert data["ok"] and data["problems"] == []
    assert data["blocks"]["response"]["content"] == "It is 4."
    assert data["payoff"]["DQ_DA"] == {"LLM": 3.0, "user": 3.1} and data["payoff_from"] == "strict"
    assert data["welfare"]["rule"] == "sum" and data["welfare"]["values"]["DQ_DA"] == pytest.approx(6.1)
    assert data["frontier"] == ["DQ_DA"]
    assert (data["chosen_key"], data["rule_choice"], data["agrees"]) == ("DQ_DA", "DQ_DA", True)
    assert data["paper"] == {
        "format_valid": True, "format_matches": True, "payoff_parses": True, "payoff_error": None,
        "response_found": True, "scorable": True, "reasoning_chars": GOOD.index("<response>"),
    }
    assert data["reward"] is None and "raw text" in data["reward_note"]


def test_disagreement_is_flagged_and_the_rule_is_configurable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # sum picks DQ_AQ (2.0 + 4.0 = 6.0 > 2.5 + 2.5); egalitarian picks DQ_DA (min 2.5 > min 2.0).
    payoff = PAYOFF.replace('"DQ_AQ": {"LLM": 2.0, "user": 2.1}', '"DQ_AQ": {"LLM": 2.0, "user": 4.0}').replace(
        '"DQ_DA": {"LLM": 3.0, "user": 3.1}', '"DQ_DA": {"LLM": 2.5, "user": 2.5}'
    )
    text = GOOD.replace(PAYOFF, payoff)
    path = tmp_path / "answer.txt"
    path.write_text(text, encoding="utf-8")
    data = inspect_json([str(path)], capsys)
    assert (data["chosen_key"], data["rule_choice"], data["agrees"]) == ("DQ_DA", "DQ_AQ", False)
    assert main(["inspect", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "DISAGREE" in shown and "Pareto frontier" in shown and "user / LLM" in shown
    assert inspect_json([str(path), "--rule", "egalitarian"], capsys)["rule_choice"] == "DQ_DA"
    assert main(["inspect", str(path), "--rule", "nope"]) == 2
    assert "unknown welfare 'nope'" in capsys.readouterr().err


def test_problems_have_codes_and_positions_and_the_paper_verdict(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    broken = "<thinking>t</thinking>\n<payoff>{\"DQ_DA\": {\"LLM\": 1.0 \"user\": 2.0}}</payoff>\n<response>r</response>"
    monkeypatch.setattr("sys.stdin", io.StringIO(broken))
    data = inspect_json([], capsys)
    codes = {p["code"] for p in data["problems"]}
    assert {"payoff_json", "missing_block"} <= codes
    bad_json = next(p for p in data["problems"] if p["code"] == "payoff_json")
    assert bad_json["position"] is not None and bad_json["line"] == 2 and bad_json["block"] == "payoff"
    assert data["paper"]["payoff_parses"] is False and data["paper"]["format_valid"] is False
    assert data["payoff"] is None and data["rule_choice"] is None and data["agrees"] is None
    monkeypatch.setattr("sys.stdin", io.StringIO(broken))
    assert main(["inspect", "-"]) == 0
    shown = capsys.readouterr().out
    assert "payoff_json" in shown and "missing_block" in shown and "(missing)" in shown
    assert "format valid no" in shown and "scores this completion 0" in shown


def test_lenient_payoff_is_shown_from_the_paper_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "answer.txt"
    path.write_text(GOOD.replace(PAYOFF, PAYOFF.replace('"', "'")), encoding="utf-8")
    data = inspect_json([str(path)], capsys)
    assert data["payoff_from"] == "paper" and data["rule_choice"] == "DQ_DA"
    assert any(p["code"] == "payoff_json" for p in data["problems"])


def test_jsonl_rows_are_picked_and_scored_when_they_carry_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in example_rollouts().read_text(encoding="utf-8").splitlines()]
    data = inspect_json([str(example_rollouts()), "--row", "8"], capsys)
    assert data["origin"].endswith("row 8")
    assert data["chosen_key"] == rows[7]["completion"].rsplit("Chosen key: ", 1)[1][:5]
    assert data["reward"]["status"] == "scored" and data["reward"]["source"] == rows[7]["data_source"]
    assert main(["inspect", str(example_rollouts()), "--row", "99"]) == 2
    assert "has only 12 rows" in capsys.readouterr().err
    first = inspect_json([str(example_rollouts())], capsys)
    assert first["origin"].endswith("row 1") and first["agrees"] is True


def test_a_row_on_stdin_is_detected(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    row = {"solution_str": GOOD, "data_source": "math-hard", "ground_truth": "4"}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(row) + "\n"))
    data = inspect_json([], capsys)
    assert data["chosen_key"] == "DQ_DA" and data["reward"] is None and "no judge_verdict" in data["reward_note"]


def test_long_blocks_are_cut_in_the_rich_view_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long = GOOD.replace("It is 4.", "word " * 400 + "THE END")
    path = tmp_path / "long.txt"
    path.write_text(long, encoding="utf-8")
    assert main(["inspect", str(path), "--max-chars", "100"]) == 0
    shown = capsys.readouterr().out
    assert "characters not shown" in shown and "THE END" in shown
    assert inspect_json([str(path), "--max-chars", "100"], capsys)["blocks"]["response"]["content"].endswith("THE END")


def test_inspect_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"text": "x"}) + "\n{bad\n", encoding="utf-8")
    assert main(["inspect", str(rows)]) == 2
    assert "missing key 'completion' or 'solution_str'" in capsys.readouterr().err
    assert main(["inspect", str(rows), "--row", "2"]) == 2
    assert "line 2: invalid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("depth", [200, 1000])
def test_a_row_nested_too_deep_is_a_clear_error_and_the_other_rows_still_show(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, depth: int) -> None:
    deep = '{"completion": "x", "extra_info": {"a": ' + "[" * depth + "]" * depth + "}}"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(deep + "\n" + json.dumps({"completion": GOOD}) + "\n", encoding="utf-8")
    assert main(["inspect", str(rows)]) == 2
    assert "line 1: JSON nested deeper than 128 levels of objects and arrays" in capsys.readouterr().err
    assert inspect_json([str(rows), "--row", "2"], capsys)["chosen_key"] == "DQ_DA"
    monkeypatch.setattr("sys.stdin", io.StringIO(deep + "\n"))
    assert main(["inspect"]) == 2
    assert "line 1: JSON nested deeper than 128 levels" in capsys.readouterr().err
