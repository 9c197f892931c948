"""What ``gtalign train`` reads, guarded: training rows that ask a held-out evaluation question are
dropped (and counted), evaluation data is refused unless ``allow_eval_data``, ``limit`` is a
seeded sample, the prompt mode of SFT rows reaches the evaluation, and rows longer than TRL's
budget are dropped before training. Small paper-layout folders in tmp_path; the paper's own data
when it is there."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from gtalign.cli._main import main
from gtalign.training._config import TrainSetupError, config_from_settings
from gtalign.training._train_data import (
    HeldOutSet,
    TrainRows,
    drop_eval_overlap,
    fit_to_length,
    held_out_questions,
    load_rows,
    normalise_question,
    prompt_length_percentiles,
    question_keys,
    sample_indices,
)

STORED = "The paper's instruction. Output four blocks.Question: "


def paper_row(data_source: str, question: str, ground_truth: str, *, history: list[str] | None = None) -> dict[str, Any]:
    """A row in the paper's format: the stored prompt asks the conversation's last user turn,
    ``single_turn_prompt`` is the question on its own."""
    turns = history or [question]
    chat = []
    for number, turn in enumerate(turns):
        if number:
            chat.append({"role": "assistant", "content": "Could you say more?"})
        chat.append({"role": "user", "content": turn})
    return {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": STORED + turns[-1]}],
        "data_source": data_source,
        "reward_model": {"ground_truth": ground_truth, "style": "rule"},
        "extra_info": {"chat_history": chat, "single_turn_prompt": question},
    }


TEST_QUESTIONS = ["What is 2 + 2?", "Solve x^2 = 9 for positive x.", "What is the sum of the first 10 odd numbers?"]
TRAIN_ROWS = [
    paper_row("math-hard", "What is 3 + 4?", "7"),                             # 0 kept
    paper_row("math-hard", "What is 2 + 2?", "4"),                             # 1 held out (verbatim)
    paper_row("math-hard", "What is 5 * 6?", "30"),                            # 2 kept
    paper_row("math-hard", "solve  X^2 = 9   for positive x.", "3"),          # 3 held out (case, spaces)
    paper_row("math-hard", "What is 10 - 1?", "9"),                            # 4 kept
    paper_row("math-hard", "What is the sum of the first 10 odd numbers?", "100",
              history=["Hi, a maths question.", "It's about the first 10 odd numbers and their sum."]),  # 5 held out
    paper_row("math-hard", "What is 2 + 22?", "24"),                           # 6 kept: a question only close to one
]
HELD_OUT = {1, 3, 5}


def write_parquet(path: Path, rows: list[Mapping[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([dict(row) for row in rows]), path)
    return path


def write_jsonl(path: Path, rows: list[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def paper_dir(tmp_path: Path) -> Path:
    """A folder in the paper's layout with a math-hard train and test split."""
    folder = tmp_path / "paper"
    write_parquet(folder / "train_test" / "math-hard" / "train.parquet", TRAIN_ROWS)
    write_parquet(folder / "train_test" / "math-hard" / "test.parquet",
                  [paper_row("math-hard", q, "x") for q in TEST_QUESTIONS])
    return folder


def sft_record(row: Mapping[str, Any], index: int, **extra: Any) -> dict[str, Any]:
    """``row`` as `gtalign data sft` writes it: a prompt-completion pair beside the paper's fields."""
    return {"id": f"math-hard/train/{index}", "prompt": row["prompt"],
            "completion": [{"role": "assistant", "content": f"<response>answer {index}</response>"}],
            "data_source": row["data_source"], "reward_model": row["reward_model"], "extra_info": row["extra_info"],
            **extra}


def ids(rows: TrainRows) -> list[str]:
    return [row["id"] for row in rows.rows]


# -- the held-out guard ----------------------------------------------------------------------------


def test_grpo_drops_exactly_the_rows_asking_a_test_question_and_counts_them(paper_dir: Path) -> None:
    rows = load_rows(config_from_settings("grpo", {"data": ["math-hard"], "output_dir": "o", "data_dir": str(paper_dir)}))
    assert ids(rows) == [f"math-hard/{i}" for i in range(len(TRAIN_ROWS)) if i not in HELD_OUT]
    assert rows.dropped_eval == {"math-hard": 3} and rows.per_source == {"math-hard": 4}
    assert "math-hard: 3 rows dropped: their question is in the held-out evaluation (math-hard test split)" in rows.notes[-1]
    assert "--allow-eval-data" in rows.notes[-1]


def test_allow_eval_data_keeps_every_row(paper_dir: Path) -> None:
    settings = {"data": ["math-hard"], "output_dir": "o", "data_dir": str(paper_dir), "allow_eval_data": True}
    rows = load_rows(config_from_settings("grpo", settings))
    assert ids(rows) == [f"math-hard/{i}" for i in range(len(TRAIN_ROWS))]
    assert rows.dropped_eval == {} and not any("dropped" in note for note in rows.notes)


def test_sft_rows_are_checked_against_the_test_split_of_their_data_source(paper_dir: Path, tmp_path: Path) -> None:
    """An SFT file names no benchmark: its rows' data_source does. Rows under gtalign's builder
    prompt (the single-turn question after 'Question:'), rows without extra_info and messages
    conversations are matched too."""
    records = [sft_record(row, i) for i, row in enumerate(TRAIN_ROWS)]
    builder = {"prompt": [{"role": "user", "content": "Four blocks, please.\n\nQuestion: What is 2 + 2?"}],
               "completion": "<response>4</response>", "data_source": "math-hard"}
    bare = {"messages": [{"role": "user", "content": "  WHAT is 2 +   2? "}, {"role": "assistant", "content": "4"}]}
    other = {"prompt": "What is 2 + 3?", "completion": "5"}
    data = write_jsonl(tmp_path / "sft.jsonl", [*records, builder, bare, other])
    rows = load_rows(config_from_settings("sft", {"data": [str(data)], "output_dir": "o", "data_dir": str(paper_dir)}))
    kept = [row["completion"][0]["content"] for row in rows.rows]
    assert kept == [f"<response>answer {i}</response>" for i in range(len(TRAIN_ROWS)) if i not in HELD_OUT] + ["5"]
    assert rows.dropped_eval == {str(data): 5}
    assert rows.row_sources == ("math-hard",) * 4 + (str(data),)


def test_the_eval_benchmarks_are_held_out_too(tmp_path: Path) -> None:
    """No paper benchmark anywhere: the held-out evaluation is the ``eval`` benchmark (a file)."""
    held = write_jsonl(tmp_path / "heldout.jsonl", [paper_row("toy", "Name a prime above 10.", "11")])
    data = write_jsonl(tmp_path / "sft.jsonl", [
        {"prompt": "Name a prime above 10.", "completion": "11", "data_source": "toy"},
        {"prompt": "Name a prime below 10.", "completion": "7", "data_source": "toy"},
    ])
    settings = {"data": [str(data)], "output_dir": "o", "eval": {"benchmarks": [str(held)]}}
    rows = load_rows(config_from_settings("sft", settings))
    assert [row["completion"][0]["content"] for row in rows.rows] == ["7"]
    assert f"{data}: 1 rows dropped: their question is in the held-out evaluation ({held}); " \
        "allow_eval_data (--allow-eval-data) keeps them" in rows.notes
    assert len(load_rows(config_from_settings("sft", {**settings, "allow_eval_data": True})).rows) == 2


def test_a_missing_test_split_is_noted_and_nothing_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "paper"
    write_parquet(folder / "train_test" / "math-hard" / "train.parquet", TRAIN_ROWS)
    rows = load_rows(config_from_settings("grpo", {"data": ["math-hard"], "output_dir": "o", "data_dir": str(folder)}))
    assert len(rows.rows) == len(TRAIN_ROWS) and rows.dropped_eval == {}
    assert any(note.startswith("held-out math-hard test split: not read") for note in rows.notes)


def test_only_held_out_rows_is_an_error_that_says_so(paper_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", [sft_record(TRAIN_ROWS[1], 1)])
    with pytest.raises(TrainSetupError, match=r"1 rows dropped: their question is in the held-out evaluation"):
        load_rows(config_from_settings("sft", {"data": [str(data)], "output_dir": "o", "data_dir": str(paper_dir)}))


def test_question_keys_normalise_and_cover_both_prompt_modes() -> None:
    assert normalise_question("  What\tIS\n 2 +  2? ") == "what is 2 + 2?"
    row = paper_row("math-hard", "The single-turn question?", "x", history=["Hello.", "The  LAST turn?"])
    assert question_keys(row["prompt"], row["extra_info"]) == {"the last turn?", "the single-turn question?"}
    assert question_keys([{"role": "user", "content": "Plain question"}]) == {"plain question"}
    assert question_keys([{"role": "system", "content": "only a system turn"}]) == frozenset()
    kept, dropped = drop_eval_overlap([{"prompt": "a?"}, {"prompt": "B?"}, {"prompt": "c?"}], {"b?"})
    assert kept == [{"prompt": "a?"}, {"prompt": "c?"}] and dropped == [{"prompt": "B?"}]


def test_held_out_questions_reads_each_set_and_notes_the_missing(paper_dir: Path) -> None:
    held = held_out_questions([HeldOutSet("math-hard", str(paper_dir), "test", "math-hard test split"),
                               HeldOutSet("ambig_qa", str(paper_dir), "test", "ambig_qa test split")])
    assert held.sets == (("math-hard test split", 3),)
    assert normalise_question(TEST_QUESTIONS[0]) in held.keys and len(held.notes) == 1


# -- refusing evaluation data ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "settings", "match"), [
    ("grpo", {"data": ["math-hard"], "split": "test"}, r"split 'test' is the held-out evaluation split"),
    ("sft", {"data": ["rows.jsonl"], "split": "TEST"}, r"split 'TEST' is the held-out evaluation split"),
    ("grpo", {"data": ["ambig_qa", "sample"]}, r"data 'sample' is gtalign's built-in evaluation sample"),
    ("sft", {"data": ["paper/math-hard/test.parquet"]}, r"data 'paper/math-hard/test.parquet' is a test split"),
])
def test_evaluation_data_is_refused_unless_allowed(kind: str, settings: dict[str, Any], match: str) -> None:
    with pytest.raises(TrainSetupError, match=match + r".*allow_eval_data: true \(--allow-eval-data\)"):
        config_from_settings(kind, {**settings, "output_dir": "o"})
    assert config_from_settings(kind, {**settings, "output_dir": "o", "allow_eval_data": True}).allow_eval_data


def test_the_cli_refuses_sample_and_takes_the_new_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gtalign.cli._main import build_parser
    from gtalign.cli._train import settings_from_args

    assert main(["train", "grpo", "--data", "sample", "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "data 'sample' is gtalign's built-in evaluation sample" in capsys.readouterr().err
    args = build_parser().parse_args(["train", "sft", "--data", "x.jsonl", "--out", "o", "--allow-eval-data",
                                      "--sample-seed", "3", "--data-dir", "d"])
    settings = settings_from_args(args)
    assert (settings["allow_eval_data"], settings["sample_seed"], settings["data_dir"]) == (True, 3, "d")
    config = config_from_settings("sft", settings)
    assert (config.allow_eval_data, config.sample_seed, config.data_dir) == (True, 3, "d")
    unset = settings_from_args(build_parser().parse_args(["train", "sft", "--data", "x.jsonl", "--out", "o"]))
    assert "allow_eval_data" not in unset and "sample_seed" not in unset  # the file's value stands


def test_a_run_recorded_before_the_new_settings_still_resumes() -> None:
    config = config_from_settings("sft", {"data": ["x.jsonl"], "output_dir": "o"})
    recorded = {key: value for key, value in config.to_json().items() if key not in ("sample_seed", "allow_eval_data")}
    assert config.diff(recorded) is None
    other = config_from_settings("sft", {"data": ["x.jsonl"], "output_dir": "o", "sample_seed": 1, "limit": 2})
    assert other.diff(config.to_json()) == "limit: 2 here vs None in the run"
    assert config_from_settings("sft", {"data": ["x.jsonl"], "output_dir": "o", "sample_seed": 1}).diff(
        config.to_json()) == "sample_seed: 1 here vs 0 in the run"


# -- limit: a seeded sample ------------------------------------------------------------------------


def test_limit_is_a_seeded_sample_of_the_usable_rows_in_file_order(paper_dir: Path, tmp_path: Path) -> None:
    many = [sft_record(paper_row("math-hard", f"Problem number {i}?", str(i)), i) for i in range(40)]
    data = write_jsonl(tmp_path / "sft.jsonl", [*many, *(sft_record(TRAIN_ROWS[i], 100 + i) for i in HELD_OUT)])

    def picked(**settings: Any) -> list[str]:
        config = config_from_settings("sft", {"data": [str(data)], "output_dir": "o", "data_dir": str(paper_dir),
                                              "limit": 8, **settings})
        return [row["completion"][0]["content"] for row in load_rows(config).rows]

    first, again, other = picked(), picked(), picked(sample_seed=1)
    assert first == again and first != other and len(first) == len(other) == 8
    numbers = [int(text.split()[1].split("<")[0]) for text in first]
    assert numbers == sorted(numbers) and numbers != list(range(8))  # file order, not the first rows
    later = [int(text.split()[1].split("<")[0]) for seed in (2, 3, 4) for text in picked(sample_seed=seed)]
    assert all(number < 40 for number in later)  # the held-out rows (100+) are never drawn
    assert sample_indices(5, 8, 0) == [0, 1, 2, 3, 4] and sample_indices(10, 3, 7) == sample_indices(10, 3, 7)


def test_grpo_limit_samples_each_entry_after_the_held_out_rows_are_dropped(paper_dir: Path) -> None:
    settings = {"data": ["math-hard"], "output_dir": "o", "data_dir": str(paper_dir), "limit": 2}
    draws = {tuple(ids(load_rows(config_from_settings("grpo", {**settings, "sample_seed": seed})))) for seed in range(12)}
    assert len(draws) > 1
    allowed = {f"math-hard/{i}" for i in range(len(TRAIN_ROWS)) if i not in HELD_OUT}
    assert all(len(draw) == 2 and set(draw) <= allowed and list(draw) == sorted(draw) for draw in draws)
    notes = load_rows(config_from_settings("grpo", settings)).notes
    assert "math-hard: 2 of its 4 usable rows, sampled with sample_seed 0 (kept in file order)" in notes


# -- the prompt mode of SFT rows -------------------------------------------------------------------


def test_the_rows_prompt_mode_is_the_sft_evaluations_prompt(tmp_path: Path) -> None:
    base = {"output_dir": "o", "eval": {"benchmarks": ["sample"]}}
    rows = [sft_record(paper_row("toy", f"Q{i}?", "x"), i, prompt_mode="builder") for i in range(3)]
    built = load_rows(config_from_settings("sft", {**base, "data": [str(write_jsonl(tmp_path / "b.jsonl", rows))]}))
    assert built.prompt_mode == "builder"
    config = config_from_settings("sft", {**base, "data": ["b.jsonl"]})
    assert config.eval_config(model="/m", default_prompt=built.prompt_mode).prompt == "builder"
    assert config.eval_config(model="/m").prompt == "stored"
    told = config_from_settings("sft", {**base, "data": ["b.jsonl"], "eval": {"benchmarks": ["sample"], "prompt": "stored"}})
    assert told.eval_config(model="/m", default_prompt="builder").prompt == "stored"
    grpo = config_from_settings("grpo", {**base, "data": ["b.jsonl"], "prompt": "stored"})
    assert grpo.eval_config(model="/m", default_prompt="builder").prompt == "stored"  # GRPO: the prompt it trained on
    with pytest.raises(TrainSetupError, match="prompt mode must be one of stored, builder"):
        config.eval_config(model="/m", default_prompt="fancy")

    mixed = [*rows, sft_record(paper_row("toy", "Q9?", "x"), 9, prompt_mode="stored"), sft_record(paper_row("toy", "Q8?", "x"), 8)]
    loaded = load_rows(config_from_settings("sft", {**base, "data": [str(write_jsonl(tmp_path / "m.jsonl", mixed))]}))
    assert loaded.prompt_mode is None
    assert any("different prompt modes (builder 3, stored 1, not recorded 1)" in note for note in loaded.notes)
    unrecorded = [{key: value for key, value in row.items() if key != "prompt_mode"} for row in rows]
    plain = load_rows(config_from_settings("sft", {**base, "data": [str(write_jsonl(tmp_path / "p.jsonl", unrecorded))]}))
    assert plain.prompt_mode is None and not any("prompt mode" in note for note in plain.notes)


def test_grpo_rows_carry_the_configs_prompt_mode(paper_dir: Path) -> None:
    settings = {"data": ["math-hard"], "output_dir": "o", "data_dir": str(paper_dir), "prompt": "builder"}
    assert load_rows(config_from_settings("grpo", settings)).prompt_mode == "builder"


# -- lengths ---------------------------------------------------------------------------------------


def chars(row: Mapping[str, Any]) -> int:
    """A stand-in tokenizer: one token per character of every message."""
    return sum(len(m["content"]) for m in [*row["prompt"], *row.get("completion", [])])


def sft_rows_of(lengths: list[int]) -> TrainRows:
    rows = tuple({"prompt": [{"role": "user", "content": "q" * (n - 1)}], "completion": [{"role": "assistant", "content": "a"}]}
                 for n in lengths)
    sources = tuple("a" if i % 2 else "b" for i in range(len(lengths)))
    return TrainRows(rows, notes=("read",), per_source={"a": sources.count("a"), "b": sources.count("b")},
                     row_sources=sources, prompt_mode="builder")


def test_fit_to_length_drops_exactly_the_sft_rows_over_max_length() -> None:
    rows = sft_rows_of([10, 30, 20, 21, 5, 45])
    fitted = fit_to_length(rows, chars, 20, "sft")
    assert [chars(row) for row in fitted.rows] == [10, 20, 5]
    assert fitted.notes == ("read", "3 rows dropped: longer than max_length=20 tokens (longest 45); "
                            "TRL would cut them before the answer closes")
    assert fitted.row_sources == ("b", "b", "b") and fitted.per_source == {"b": 3} and fitted.prompt_mode == "builder"
    assert fit_to_length(rows, chars, 45, "sft") is rows
    assert fit_to_length(rows, chars, None, "sft") is rows
    with pytest.raises(ValueError, match="count_tokens gave -1 for row 1"):
        fit_to_length(rows, lambda row: -1, 20, "sft")
    with pytest.raises(ValueError, match="max_length must be an integer >= 1"):
        fit_to_length(rows, chars, 0, "sft")


def test_grpo_lengths_are_described_not_dropped() -> None:
    rows = sft_rows_of(list(range(1, 101)))
    fitted = fit_to_length(rows, chars, 90, "grpo")
    assert fitted.rows == rows.rows
    assert fitted.notes[-1] == "prompt tokens: p50 50, p90 90, p95 95, p99 99, p100 100; 10 of 100 prompts longer than max_length=90 tokens"
    assert prompt_length_percentiles([7, 1, 3]) == {50: 3, 90: 7, 95: 7, 99: 7, 100: 7}
    assert prompt_length_percentiles([]) == {}


# -- the paper's data ------------------------------------------------------------------------------


def _question_sets(table: Any) -> list[set[str]]:
    out = []
    for extra in table["extra_info"]:
        keys = {normalise_question(str(extra.get("single_turn_prompt") or ""))}
        users = [turn["content"] for turn in extra.get("chat_history", []) if turn["role"] == "user"]
        if users:
            keys.add(normalise_question(users[-1]))
        out.append(keys - {""})
    return out


def test_the_paper_math_hard_train_split_loses_its_test_questions(paper_table: Callable[..., Any]) -> None:
    from tests.conftest import PAPER_DATA

    train = paper_table("train_test/math-hard/train.parquet", columns=["extra_info"])
    test = paper_table("train_test/math-hard/test.parquet", columns=["extra_info"])
    held = set().union(*_question_sets(test))
    expected = sum(1 for keys in _question_sets(train) if keys & held)
    assert expected > 300  # the paper's train split repeats its test questions
    rows = load_rows(config_from_settings("grpo", {"data": ["math-hard"], "output_dir": "o", "data_dir": str(PAPER_DATA)}))
    assert rows.dropped_eval == {"math-hard": expected}
    assert len(rows.rows) == len(train) - expected


def test_a_data_source_read_from_rows_never_imports_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row's data_source is data: the held-out check looks it up among registered benchmarks only,
    never as a dotted path (a source 'game:x' imported a module named 'game')."""
    from gtalign import _registry
    from gtalign.training._train_data import _held_out_sets

    imported: list[str] = []
    monkeypatch.setattr(_registry, "_resolve", lambda path: imported.append(path) or None)
    config = config_from_settings("grpo", {"data": [str(tmp_path / "rows.jsonl")], "output_dir": "o",
                                           "data_dir": str(tmp_path)})
    sets = _held_out_sets(config, ["os:system", "game:prisoners-dilemma", "some.module.attr", "unknown-source"])
    assert imported == [] and sets == []
