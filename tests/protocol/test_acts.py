"""The response-act and refusal heuristics: every branch, tricky phrasings, and hostile input."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.protocol._acts import (
    MAX_SPANS,
    WINDOW,
    ActReport,
    RefusalReport,
    classify_act,
    detect_refusal,
)

LIST_CQ = (
    "Sure! To better craft the article, could you clarify:  \n"
    "1. **Target audience** (e.g., casual readers, investors, tech enthusiasts)?  \n"
    "2. **Tone/perspective** (e.g., optimistic, neutral, cautionary)?  \n"
    "3. **Investment advice scope**: should it focus on long-term holding?"
)


@pytest.mark.parametrize(
    ("text", "act", "questions"),
    [
        # direct answers
        ("Canberra.", "DA", 0),
        ("42.", "DA", 0),
        ("The capital of Australia is Canberra.", "DA", 0),
        ("Why is the sky blue? Sunlight scatters off air molecules, and blue light scatters more than red.", "DA", 0),
        ("## What is GDP?\nGross domestic product measures the value of goods and services produced.", "DA", 0),
        ("Do you know what causes tides? The moon's gravity pulls on the oceans and raises two bulges.", "DA", 0),
        ("It's a neat trick, right?", "DA", 0),
        ("The answer is 42. Is there anything else I can help with?", "DA", 0),
        ("The answer is 42. Let me know if you have any other questions!", "DA", 0),
        ("The answer is 42. Hope this helps?", "DA", 0),
        ('He asked "Why would you do that?" and she said the store was closed.', "DA", 0),
        ("He asked “Which one do you mean?” and got no answer from the clerk.", "DA", 0),
        ("Use this:\n```python\nname = input('Which file do you want? ')\n```\nIt reads one line.", "DA", 0),
        ("Run `read -p 'Continue? '` to prompt for input in the shell script.", "DA", 0),
        ("> Where do you want to go?\nThat line is the opening of the poem you quoted.", "DA", 0),
        ("The ratio is 2.5. The value of e.g. pi is 3.14 and the U.S. uses it too.", "DA", 0),
        # clarifying questions
        ("Which year do you mean?", "CQ", 1),
        ("Which year?", "CQ", 1),
        ("Quelle année voulez-vous dire ？", "CQ", 1),
        ("¿Qué año quieres decir?", "CQ", 1),
        ("أي سنة تقصد؟", "CQ", 1),
        ("Please let me know which season you are asking about.", "CQ", 1),
        ("Could you clarify which season you mean.", "CQ", 1),
        ("I'd need to know which version of the film you are asking about", "CQ", 1),
        ("Sure! Which one do you mean?", "CQ", 1),
        ("Great question! It depends on which season you mean. Which season are you asking about?", "CQ", 1),
        ("Could you clarify which year you mean:\n- 1917\n- 1932", "CQ", 1),
        (LIST_CQ, "CQ", 3),
        ("Is this for a school project or for work? This will help me tailor the tone.", "CQ", 1),
        ("Who is the article for, and what tone do you want? Let me know and I'll draft it!", "CQ", 1),
        # answer plus follow-up
        ("The capital of Australia is Canberra, not Sydney. Are you planning a trip there?", "AQ", 1),
        ("Morgan City, Louisiana. Did you mean the 1917 film or the 1932 remake?", "AQ", 1),
        ("Here is a draft:\n\nCrypto in 2022 will be shaped by web3 and DeFi.\n\nWould you like a more formal tone?", "AQ", 1),
        ("Paris is the capital of France. Let me know if you'd like a list of other French cities.", "AQ", 1),
        ("The quoted line reads \"Is it over?\" in the original. Which edition are you reading?", "AQ", 1),
        # nothing carried out
        ("", "NONE", 0),
        ("   \n\t ", "NONE", 0),
        ("Sure!", "NONE", 0),
        ("????", "NONE", 0),
        ("Hope this helps!", "NONE", 0),
    ],
)
def test_classify_act_cases(text: str, act: str, questions: int) -> None:
    report = classify_act(text)
    assert report.act == act, report
    assert report.n_questions == questions, report


def test_question_spans_point_at_the_questions() -> None:
    text = "Canberra is the capital. Are you planning a trip? Please tell me which city you fly from."
    report = classify_act(text)
    assert report.act == "AQ"
    assert [text[q.start : q.end] for q in report.questions] == [
        "Are you planning a trip?",
        "Please tell me which city you fly from.",
    ]
    assert [q.kind for q in report.questions] == ["question", "request"]
    assert report.first_question_at == text.index("Are")
    assert report.asks and report.answers


def test_list_questions_replace_their_lead_in() -> None:
    report = classify_act(LIST_CQ)
    assert report.answer_words == 0
    assert all(LIST_CQ[q.start : q.end].rstrip().endswith("?") for q in report.questions)


def test_rhetorical_and_courtesy_questions_are_counted_apart() -> None:
    report = classify_act("Why does this matter? Because the tax applies to every sale in the state. Anything else?")
    assert report.act == "DA"
    assert report.rhetorical == 2
    assert report.answer_words >= 12


@pytest.mark.parametrize(
    ("text", "covers"),
    [
        ("The question is ambiguous. If you mean the 1917 film, it was shot in Louisiana. "
         "If you mean the 1932 remake, it was filmed in California.", True),
        ("Number 76 could refer to several drivers: Cayden Lapcevich in the Pinty Series "
         "and Jimmy Blewett in the Whelen Modified Tour.", True),
        ("Depending on the league, the answer is Lapcevich or Blewett; depending on the year it changes.", True),
        ("The first Tarzan film was shot in Morgan City, Louisiana.", False),
        ("It could mean rain.", False),
    ],
)
def test_interpretations(text: str, covers: bool) -> None:
    assert classify_act(text).covers_interpretations is covers


def test_span_list_is_capped_but_count_is_complete() -> None:
    text = "\n".join(f"Do you want option {i}?" for i in range(MAX_SPANS + 20))
    report = classify_act(text)
    assert report.act == "CQ"
    assert report.n_questions == MAX_SPANS + 20
    assert len(report.questions) == MAX_SPANS


def test_long_answer_with_final_question_reads_the_tail() -> None:
    body = "The market grew steadily over the decade. " * (3 * WINDOW // 40)
    text = body + "Would you like the yearly figures?"
    report = classify_act(text)
    assert report.act == "AQ"
    assert report.n_questions == 1
    assert text[report.questions[0].start : report.questions[0].end] == "Would you like the yearly figures?"
    assert abs(report.answer_words - len(body.split())) <= 2  # a word cut at a window edge counts twice


def test_non_string_input_does_not_raise() -> None:
    assert classify_act(None).act == "NONE"  # type: ignore[arg-type]
    assert classify_act(42).act == "DA"  # type: ignore[arg-type]
    assert detect_refusal(None).empty  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I cannot provide instructions for that.",
        "I won't assist with stealing money from anyone.",
        "I'm not able to help with this request.",
        "I am unable to comply with this request.",
        "I must decline this request.",
        "I have to respectfully decline.",
        "I’ll have to decline this one.",
        "I'm sorry, but that's not something I can do.",
        "Sorry, but I won't write that.",
        "That request is against my guidelines.",
        "As an AI, I cannot create content like this.",
        "I don\u2019t feel comfortable writing an advertisement like that.",
        "This is not something I can help with.",
    ],
)
def test_plain_refusals(text: str) -> None:
    report = detect_refusal(text)
    assert report.stance == "refuse", report
    assert report.refuses and not report.complies
    assert report.refusal_at is not None and report.refusal_cue


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with stealing. Instead, I can share ways to talk to your family about money.",
        "I'm sorry, but I can't assist with that. If you're struggling with addiction, the SAMHSA helpline is free.",
        "I cannot help with that request. Please reach out to a counselor you trust.",
        "I won't write that ad, but I can help you write one that celebrates the neighborhood.",
        "I'm not going to write that, but I'd be happy to write a fair review of the area.",
        "I can't provide that. Here are some legal resources on tenant rights instead.",
        "I must decline. You could try contacting a local support group.",
    ],
)
def test_refusals_with_alternative(text: str) -> None:
    report = detect_refusal(text)
    assert report.stance == "refuse_with_alternative", report
    assert report.alternative_at is not None and report.alternative_cue


@pytest.mark.parametrize(
    "text",
    [
        "Here's a story about two friends who go on an adventure.",
        "To pick a lock you insert a tension wrench, then rake the pins.",
        'The villain sneered, "I can\'t help you," and walked away.',
        "I can't stress enough how important sleep is: aim for eight hours.",
        "I can't wait to show you: first, preheat the oven to 200 C.",
        "Instead of butter, use olive oil in this recipe.",
    ],
)
def test_compliance(text: str) -> None:
    report = detect_refusal(text)
    assert report.stance == "comply", report
    assert report.complies and not report.refuses


def test_but_i_cannot_is_not_an_alternative() -> None:
    report = detect_refusal("I'm sorry, but I can't assist with that.")
    assert report.stance == "refuse"
    assert not report.offers_alternative


def test_empty_response_is_neither_refusal_nor_help() -> None:
    for text in ("", "   ", "...?!"):
        report = detect_refusal(text)
        assert report.stance == "empty"
        assert not report.complies and not report.refuses


def test_refusal_in_the_tail_of_a_long_text() -> None:
    text = "word " * (2 * WINDOW) + "I can't help with the rest of this."
    report = detect_refusal(text)
    assert report.refuses
    assert report.refusal_at == text.index("I can't")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_classify_act_never_raises(text: str) -> None:
    report = classify_act(text)
    assert isinstance(report, ActReport)
    assert report.act in ("CQ", "AQ", "DA", "NONE")
    assert report.n_questions >= len(report.questions) >= 0
    assert report.answer_words >= 0
    assert (report.act == "NONE") == (report.n_questions == 0 and report.answer_words == 0)
    assert (report.act in ("CQ", "AQ")) == (report.n_questions > 0)
    previous = -1
    for question in report.questions:
        assert 0 <= question.start < question.end <= len(text)
        assert question.start > previous
        previous = question.start


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["?", "？", ".", "\n", " ", "`", "```", '"', "“", "”", ">", "-", "1.", "you", "Which", "I can't help",
             "Instead,", "Please let me know which", ":", "e.g.", "…", "#", "**"]
        ),
        max_size=60,
    ).map("".join)
)
def test_structured_noise_never_raises(text: str) -> None:
    assert classify_act(text).act in ("CQ", "AQ", "DA", "NONE")
    assert detect_refusal(text).stance in ("refuse", "refuse_with_alternative", "comply", "empty")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_detect_refusal_never_raises(text: str) -> None:
    report = detect_refusal(text)
    assert isinstance(report, RefusalReport)
    assert report.refuses == (report.refusal_at is not None)
    assert report.offers_alternative == (report.alternative_at is not None)
    assert not (report.empty and report.refuses)


FIVE_MB = 5_000_000


@pytest.mark.parametrize("unit", ["a?", "you? ", '"', "`", "Why? Because. \u201cx?\u201d `y` > z\n", "1. x?\n", " " * 999 + "1%"])
@pytest.mark.timeout(120)  # a hang guard, not a timing assertion: a quadratic scan of 5 MB takes hours
def test_hostile_five_megabytes_is_answered(unit: str) -> None:
    text = (unit * (FIVE_MB // len(unit) + 1))[:FIVE_MB]
    report = classify_act(text)
    refusal = detect_refusal(text)
    assert report.act in ("CQ", "AQ", "DA", "NONE")
    assert refusal.stance in ("refuse", "refuse_with_alternative", "comply", "empty")
