"""The Harmony output parser: channels, recipients, calls, and what other servers get wrong, on decoded text
fed a character, a few characters or one model token at a time."""

from __future__ import annotations

import json

import pytest

from mlxcli.core.collect import collect
from mlxcli.core.events import Finish, Usage
from mlxcli.engine import harmony
from mlxcli.engine.formats import harmony_format
from mlxcli.engine.output import OutputPlan, OutputProcessor
from tests.support.harmony import SPECIAL_TOKENS, msg, reply

FORMAT = harmony_format()
PLAN = OutputPlan(format=FORMAT, tools=FORMAT.tools, initial=FORMAT.initial)
WEATHER = '{"city": "Paris"}'


def run(text: str, chunk: int = 1, plan: OutputPlan = PLAN, **options):
    """The completion the events add up to, with the text fed ``chunk`` characters at a time."""
    processor = OutputProcessor([], plan, **options)
    events = []
    for i in range(0, len(text), chunk):
        events += processor.feed(text[i : i + chunk])[0]
    events += processor.finish()
    for event in events:
        for value in vars(event).values():
            assert not any(marker in str(value) for marker in SPECIAL_TOKENS), event
    reason = processor.finish_reason("stop")
    return collect([*events, Finish(reason, Usage(0, 0))])


def calls(completion) -> list[tuple[str, dict]]:
    return [(c.name, json.loads(c.arguments)) for c in completion.tool_calls]


TURN = reply(
    msg("analysis", "They want the weather."),
    msg("commentary", "Checking the forecast."),
    msg("commentary", WEATHER, to="functions.get_weather", end="<|call|>"),
)


@pytest.mark.parametrize("chunk", [1, 3, 7, 10_000])
def test_reasoning_preamble_and_call(chunk):
    completion = run(TURN, chunk)
    assert completion.reasoning == "They want the weather."
    assert completion.text == "Checking the forecast."  # a preamble: a progress note for the user
    assert calls(completion) == [("get_weather", {"city": "Paris"})]
    assert completion.finish.reason == "tool_calls"


@pytest.mark.parametrize(
    "text",
    [
        reply(msg("commentary", WEATHER, to="functions.get_weather", in_role=True, end="<|call|>")),  # in the role header
        reply(msg("analysis", WEATHER, to="functions.get_weather", end="<|call|>")),  # on the analysis channel
        reply(msg("commentary", WEATHER, to="functions.get_weather")),  # ended by <|end|>, not <|call|>
        reply(msg("commentary", WEATHER, to="functions.get_weather", end="<|return|>")),
        reply(msg("commentary", WEATHER, to="functions.get_weather", end="")),  # the answer just stops
        reply(msg("commentary", WEATHER + " and then some", to="functions.get_weather", end="")),
        "<|channel|>commentary to=functions.get_weather json<|message|>" + WEATHER,  # no <|constrain|>
    ],
    ids=["role-header", "analysis-channel", "end", "return", "no-end", "trailing-text", "no-constrain"],
)
@pytest.mark.parametrize("chunk", [1, 10_000])
def test_a_call_is_found_wherever_the_model_addresses_it_and_however_it_ends(text, chunk):
    completion = run(text, chunk)
    assert calls(completion) == [("get_weather", {"city": "Paris"})]
    assert completion.text == "" and completion.reasoning == ""


def test_repeated_identical_calls_are_made_once():
    again = msg("commentary", WEATHER, to="functions.get_weather")
    other = msg("commentary", '{"city": "Oslo"}', to="functions.get_weather")
    completion = run(reply(again, again, other, again.replace(WEATHER, '{ "city" : "Paris" }')))
    assert calls(completion) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    assert len({c.id for c in completion.tool_calls}) == 2


def test_unknown_channels_foreign_roles_and_stray_markers_never_reach_the_answer():
    text = reply(
        msg("scratchpad", "hidden notes"),
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"SUNNY\"<|end|>",  # a made-up result
        msg("commentary", '{"query": "x"}', to="browser.search", end="<|call|>"),  # a built-in tool: not ours
        "<|start|>user<|message|>made-up user turn<|end|>",
        msg("final", "It is <|constrain|>sunny<|channel|>.", end="<|return|>"),
    )
    for chunk in (1, 10_000):
        completion = run(text, chunk)
        assert (completion.text, completion.reasoning, completion.tool_calls) == ("It is sunny.", "", [])


def test_messages_of_one_kind_are_paragraphs():
    text = reply(msg("analysis", "First thought."), msg("analysis", "Second thought."), msg("commentary", "Note."), msg("final", "Answer."))
    completion = run(text, 2)
    assert completion.reasoning == "First thought.\n\nSecond thought."
    assert completion.text == "Note.\n\nAnswer."


def test_a_call_cut_off_is_dropped_not_shown():
    completion = run(reply(msg("commentary", '{"city": "Pa', to="functions.get_weather", end="")))
    assert (completion.text, completion.tool_calls) == ("", [])


def test_without_tools_a_call_is_dropped():
    plan = OutputPlan(format=FORMAT, tools=None, initial=FORMAT.initial)
    completion = run(TURN, 3, plan)
    assert (completion.text, completion.reasoning, completion.tool_calls) == ("Checking the forecast.", "They want the weather.", [])


def test_reasoning_strip_and_reasoning_parser_none_drop_the_analysis_channel():
    assert run(TURN, reasoning="strip").reasoning == ""
    off = harmony_format(reasoning=False)
    completion = run(TURN, 3, OutputPlan(format=off, tools=off.tools, initial=off.initial))
    assert (completion.reasoning, completion.text) == ("", "Checking the forecast.")


def test_a_forced_call_continues_the_header_the_prompt_began():
    required = OutputPlan(format=FORMAT, tools=FORMAT.tools, initial=harmony.HEADER, prefill=harmony.tool_call_start)
    assert calls(run("get_weather <|constrain|>json<|message|>" + WEATHER + "<|call|>", 1, required)) == [("get_weather", {"city": "Paris"})]
    named = OutputPlan(format=FORMAT, tools=FORMAT.tools, initial=harmony.HEADER, prefill=harmony.NAMED_CALL_PREFIX.format(name="get_time"))
    assert calls(run("<|message|>{}", 1, named)) == [("get_time", {})]


def test_reasoning_tokens_count_the_analysis_channel():
    processor = OutputProcessor([], PLAN)
    pieces = ["<|channel|>", "analysis", "<|message|>", "Let", " me", " see", ".", "<|end|>", "<|start|>", "assistant",
              "<|channel|>", "final", "<|message|>", "Four", "."]
    for piece in pieces:
        processor.feed(piece)
    assert processor.reasoning_tokens == 6  # <|message|>, the four tokens of the message, <|end|>


@pytest.mark.parametrize(
    "header, expected",
    [
        ("<|channel|>analysis", ("analysis", "")),
        ("assistant<|channel|>final", ("final", "")),
        ("<|channel|>commentary", ("commentary", "")),
        ("<|channel|>commentary to=functions.f <|constrain|>json", (harmony.CALL, "<|channel|>commentary to=functions.f <|constrain|>json<|message|>")),
        (" to=functions.f<|channel|>commentary json", (harmony.CALL, " to=functions.f<|channel|>commentary json<|message|>")),
        ("<|channel|>commentary to=python", ("", "")),
        ("functions.f to=assistant<|channel|>commentary", ("", "")),
        ("", ("", "")),
    ],
)
def test_route(header, expected):
    assert harmony.route(header) == expected


def test_parse_tool_call_refuses_what_is_no_call():
    assert harmony.parse_tool_call(" to=functions.f<|channel|>commentary<|message|>") == {"name": "f", "arguments": {}}
    for text in ("<|channel|>commentary<|message|>{}", " to=functions.f<|message|>[1]", " to=functions.f<|message|>{bad"):
        with pytest.raises(ValueError):
            harmony.parse_tool_call(text)


def test_token_by_token_with_commentary_split_over_two_tokens(harmony_tokenizer_dir, tokenizers):
    tokenizer = tokenizers(harmony_tokenizer_dir)
    assert len(tokenizer.encode("commentary", add_special_tokens=False)) == 2  # "comment", "ary"
    detokenizer = tokenizer.detokenizer
    processor = OutputProcessor([], PLAN)
    events = []
    for token in tokenizer.encode(TURN, add_special_tokens=False):
        detokenizer.add_token(token)
        events += processor.feed(detokenizer.last_segment)[0]
    detokenizer.finalize()
    events += processor.feed(detokenizer.last_segment)[0] + processor.finish()
    completion = collect([*events, Finish(processor.finish_reason("stop"), Usage(0, 0))])
    assert (completion.reasoning, completion.text) == ("They want the weather.", "Checking the forecast.")
    assert calls(completion) == [("get_weather", {"city": "Paris"})]
