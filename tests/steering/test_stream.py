"""Streaming a steered answer: the response deltas, the result, early close."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.backends._base import SamplingParams
from gtalign.protocol import parse_answer
from gtalign.steering import PolicyError, SteeringEngine, SteeringResult
from gtalign.steering._steps import ResponseText
from tests.steering._fixtures import LLM_SHIFT_FLIPS, first_stage
from gtalign.testing import ScriptedBackend
from tests.steering.test_engine import CONTINUATION, QUESTION, scripted


def _feed(reader: ResponseText, pieces: list[str]) -> str:
    return "".join(reader.feed(piece) for piece in pieces) + reader.flush()


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


def test_response_text_shows_only_the_stripped_block_content():
    text = " It fits.\n</analyze>\n<response>\n  Paris is the capital.\n\n</response>\ntrailing"
    assert _feed(ResponseText(), list(text)) == "Paris is the capital."
    assert _feed(ResponseText(), [text]) == "Paris is the capital."


def test_response_text_holds_back_what_could_be_a_tag():
    reader = ResponseText(opened=True)
    assert reader.feed("Paris") == "Paris"
    assert reader.feed(" </resp") == ""
    assert reader.feed("onse> more") == ""
    assert reader.closed
    reader = ResponseText(opened=True)
    assert reader.feed("a </re") == "a"
    assert reader.feed("d> b") == " </red> b"


def test_response_text_waits_for_the_tag_it_must_follow():
    text = " I will now write the <response> block.\n</analyze>\n<response>\nFour.\n</response>"
    assert _feed(ResponseText(after="</analyze>"), list(text)) == "Four."
    assert _feed(ResponseText(), [text]) == "block.\n</analyze>\n<response>\nFour."


def test_response_text_flushes_what_only_looked_like_a_tag():
    reader = ResponseText(opened=True)
    assert reader.feed("Use a -> b or a <") == "Use a -> b or a"
    assert reader.flush() == " <"
    assert ResponseText().flush() == ""


def test_response_text_without_a_response_shows_nothing():
    assert _feed(ResponseText(), ["<analyze>only analysis", " and <resp", "ond"]) == ""


_PIECE = st.lists(st.sampled_from([*"ab <>/\n", "<response>", "</response>", "respon", "</re"]), max_size=20).map("".join)


@settings(max_examples=300, deadline=None)
@given(head=_PIECE, body=_PIECE, tail=_PIECE, closed=st.booleans(), cuts=st.lists(st.integers(0, 200), max_size=12))
def test_response_text_joined_equals_the_parsers_content(head, body, tail, closed, cuts):
    """However the text is cut into pieces, the shown text is the content between the first
    <response> and the next </response> (or the end), stripped."""
    text = head + "<response>" + body + ("</response>" + tail if closed else "")
    shown = _feed(ResponseText(), _split(text, cuts))
    opened = text.find("<response>") + len("<response>")
    closing = text.find("</response>", opened)
    assert shown == text[opened:closing if closing >= 0 else len(text)].strip()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=20))
def test_response_text_never_fails_and_is_cut_invariant(text, cuts):
    assert _feed(ResponseText(), _split(text, cuts)) == _feed(ResponseText(), [text])


async def _collect(engine: SteeringEngine, question: str = QUESTION) -> tuple[list[str], SteeringResult]:
    stream = engine.stream(question)
    deltas = [delta async for delta in stream]
    return deltas, stream.result


def test_engine_stream_yields_the_response_as_it_is_written():
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    engine = SteeringEngine(backend, "research-llm-shift", params=SamplingParams(max_tokens=300))
    deltas, result = asyncio.run(_collect(engine))
    assert result.status == "ok", result.reason
    assert len(deltas) > 1, "the response arrives in pieces, not at the end"
    assert "".join(deltas) == result.response == "Paris. Would you like its population too?"
    assert not any("<" in delta for delta in deltas)
    plain = asyncio.run(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS)), "research-llm-shift",
                                       params=SamplingParams(max_tokens=300)).run(QUESTION))
    assert plain.to_record()["text"] == result.to_record()["text"]


def test_engine_stream_starts_before_the_response_ends():
    """The first delta reaches the consumer while the backend is still writing."""
    backend = scripted(first_stage(LLM_SHIFT_FLIPS), word_delay=0.02)
    engine = SteeringEngine(backend, "research-llm-shift")

    async def main():
        stream = engine.stream(QUESTION)
        first = await anext(stream)
        # the continuation has not finished: only the first-stage stage is recorded so far
        running = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        rest = [delta async for delta in stream]
        return first, running, rest, stream.result

    first, running, rest, result = asyncio.run(main())
    assert running, "steering is still running when the first delta arrives"
    assert first + "".join(rest) == result.response


def test_engine_stream_forced_response_streams_the_response_stage():
    calls = []

    def after(prefill):
        calls.append(prefill)
        return " DQ_AQ is best.\n</analyze>\nThanks!" if len(calls) == 1 else "Paris. Anything about its history?"

    deltas, result = asyncio.run(_collect(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), after=after),
                                                         "research-llm-shift")))
    assert [e.kind for e in result.fallbacks] == ["forced_response"]
    assert "".join(deltas) == result.response == "Paris. Anything about its history?"


def test_engine_stream_truncated_response_matches_the_result():
    long_response = " Fine.\n</analyze>\n<response>\n" + " ".join(["word"] * 200)
    engine = SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), then=long_response),
                            params=SamplingParams(max_tokens=60))
    deltas, result = asyncio.run(_collect(engine))
    assert result.fallbacks[-1].kind == "truncated"
    assert "".join(deltas) == result.response


def test_engine_stream_failure_is_a_result():
    backend = scripted(first_stage(LLM_SHIFT_FLIPS), fail_calls=frozenset({1}))
    deltas, result = asyncio.run(_collect(SteeringEngine(backend)))
    assert deltas == [] and result.status == "failed" and "continuation failed" in result.reason


def test_engine_stream_close_early_cancels_the_steering():
    backend = scripted(first_stage(LLM_SHIFT_FLIPS), word_delay=0.05)
    engine = SteeringEngine(backend)

    async def main():
        stream = engine.stream(QUESTION)
        await anext(stream)
        await stream.aclose()
        await asyncio.sleep(0.2)
        return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    assert asyncio.run(main()) == []


def test_engine_stream_bad_policy_raises_before_generating():
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    with pytest.raises(PolicyError, match="no-such-policy"):
        SteeringEngine(backend).stream(QUESTION, policy="no-such-policy")
    assert backend.calls == []


def test_backend_without_stream_still_streams_the_whole_response():
    """A backend with only ``generate``: the response comes as one delta once the continuation is done."""
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))

    class GenerateOnly:
        name, model = "generate-only", "m"

        async def generate(self, messages, *, prefill="", params=SamplingParams()):
            return await backend.generate(messages, prefill=prefill, params=params)

        async def aclose(self):
            return None

    deltas, result = asyncio.run(_collect(SteeringEngine(GenerateOnly())))
    assert deltas == [result.response] and parse_answer(result.text).response == result.response


def test_engine_stream_ignores_a_response_tag_mentioned_in_the_analysis():
    then = " I will now write the <response> block.\n</analyze>\n<response>\nFour.\n</response>"
    deltas, result = asyncio.run(_collect(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), then=then))))
    assert "".join(deltas) == result.response == "Four."


def test_engine_stream_releases_a_trailing_partial_tag():
    then = " Fine.\n</analyze>\n<response>\nUse a -> b or a <\n</response>"
    deltas, result = asyncio.run(_collect(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), then=then))))
    assert "".join(deltas) == result.response == "Use a -> b or a <"


def test_engine_stream_tops_up_a_response_the_stream_could_not_place():
    """<response> without </analyze> first: the stream waits, the parser still reads the block;
    the rest arrives as one last delta, so the deltas still join to the response."""
    then = " Fine. <response>\nFour.\n</response>"
    deltas, result = asyncio.run(_collect(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), then=then))))
    assert result.response == "Four." and "".join(deltas) == "Four."


def test_engine_stream_close_lets_the_callers_cancellation_through():
    """Closing a stream waits for the steering to wind down, but a timeout around the caller
    still fires on time."""
    class SlowCleanup(ScriptedBackend):
        async def _stream_source(self, messages, prefill, params):
            try:
                async for item in super()._stream_source(messages, prefill, params):
                    yield item
            finally:
                await asyncio.shield(asyncio.sleep(1.0))

    backend = SlowCleanup(lambda m, prefill: CONTINUATION if prefill else first_stage(LLM_SHIFT_FLIPS), word_delay=0.05)

    async def main():
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async with SteeringEngine(backend).stream(QUESTION) as stream:
                    async for _ in stream:
                        break  # leave at once: closing waits for the 1 s cleanup, the timeout cuts in
        return loop.time() - started

    assert asyncio.run(main()) < 0.9
