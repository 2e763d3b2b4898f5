"""Stop-string matching on streamed text."""

from mlxcli.engine.output import StopMatcher


def feed_all(matcher, pieces):
    out, hit = [], None
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            break
    return "".join(out), hit


def test_no_stop_strings_passes_text_through():
    assert feed_all(StopMatcher([]), ["a", "b"]) == ("ab", None)


def test_match_split_across_pieces():
    assert feed_all(StopMatcher(["END"]), ["abc E", "N", "D more"]) == ("abc ", "END")


def test_held_prefix_released_when_it_diverges():
    m = StopMatcher(["END"])
    assert m.feed("abc EN") == ("abc ", None)
    assert m.feed("X") == ("ENX", None)


def test_earliest_of_several_stops_wins():
    assert feed_all(StopMatcher(["zz", "b"]), ["a b zz"]) == ("a ", "b")


def test_flush_returns_held_text():
    m = StopMatcher(["STOP"])
    assert m.feed("ST") == ("", None)
    assert m.flush() == "ST"


# ---- routing: reasoning and tool calls -------------------------------------------

import json  # noqa: E402

import pytest  # noqa: E402

from mlxcli.core.collect import collect  # noqa: E402
from mlxcli.core.events import ReasoningDelta, TextDelta, ToolCallDelta  # noqa: E402
from mlxcli.engine.formats import NAMED_CALL_PREFIX, OutputFormat, ThinkFormat, tool_format, tool_parsers  # noqa: E402
from mlxcli.engine.output import OutputPlan, OutputProcessor  # noqa: E402

THINK = ThinkFormat("<think>", "</think>")
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}}

# One call to get_weather(city="Paris") in the format of each mlx-lm parser.
SAMPLES = {
    "json_tools": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "qwen3_coder": "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
    "glm47": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>",
    "laguna": "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>",
    "longcat": "<longcat_tool_call>get_weather\n<longcat_arg_key>city</longcat_arg_key>\n"
    "<longcat_arg_value>Paris</longcat_arg_value>\n</longcat_tool_call>",
    "minimax_m2": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>\n</minimax:tool_call>',
    "mistral": '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
    "pythonic": '<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>',
    "kimi_k2": "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
    '{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>',
    "kimi_k3": '<|open|>tools<|sep|><|open|>call tool="get_weather" index="1"<|sep|><|open|>argument key="city" '
    'type="string"<|sep|>Paris<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|>',
    "function_gemma": "<start_function_call>call:get_weather{city:<escape>Paris<escape>}<end_function_call>",
    "gemma4": '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>',
    "minicpm5": '<function name="get_weather"><param name="city">Paris</param></function>',
    "muse_spark": '<atem:function_calls><atem:invoke name="get_weather"><atem:parameter name="city">Paris'
    "</atem:parameter></atem:invoke></atem:function_calls>",
    # Ours (gpt-oss), read here like the others; its own channels and headers: tests/harmony.
    "harmony": '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>',
}
TOOL_SPECS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def run(plan: OutputPlan, text: str, *, step: int = 1, stop=(), reasoning="separate"):
    """Feed ``text`` in pieces of ``step`` characters; the collected completion and the processor."""
    processor = OutputProcessor(list(stop), plan, reasoning=reasoning)
    events = []
    for i in range(0, len(text), step):
        new, hit = processor.feed(text[i : i + step])
        events += new
        if hit:
            break
    events += processor.finish()
    return collect(events), processor, events


def calls(completion):
    return [{"name": c.name, "arguments": json.loads(c.arguments)} for c in completion.tool_calls]


def test_every_tool_parser_has_a_sample():
    assert sorted(SAMPLES) == tool_parsers()


@pytest.mark.parametrize("parser", sorted(SAMPLES))
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_each_format_parses_to_one_call_after_the_text(parser, step):
    plan = OutputPlan(tools=tool_format(parser), tool_specs=TOOL_SPECS)
    completion, processor, _ = run(plan, "Let me check.\n" + SAMPLES[parser], step=step)
    assert calls(completion) == [WEATHER]
    assert completion.text == "Let me check."  # no markup, no whitespace that belonged to it
    assert processor.finish_reason("stop") == "tool_calls"


@pytest.mark.parametrize("parser", sorted(NAMED_CALL_PREFIX))
def test_named_call_prefixes_begin_a_call_their_parser_reads(parser):
    """tool_choice naming a function prefills this text; the model writes the rest of the call."""
    tools = tool_format(parser)
    prefix = tools.call_prefix("get_weather")
    rest = {
        "json_tools": '{"city": "Paris"}}\n</tool_call>',
        "qwen3_coder": "<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
        "glm47": "<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>",
        "laguna": "<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>",
        "longcat": "<longcat_arg_key>city</longcat_arg_key>\n<longcat_arg_value>Paris</longcat_arg_value>\n</longcat_tool_call>",
        "minimax_m2": '<parameter name="city">Paris</parameter>\n</invoke>\n</minimax:tool_call>',
        "mistral": '{"city": "Paris"}',
        "pythonic": 'city="Paris")]<|tool_call_end|>',
        "kimi_k2": '{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>',
        "function_gemma": "city:<escape>Paris<escape>}<end_function_call>",
        "gemma4": 'city:<|"|>Paris<|"|>}<tool_call|>',
        "minicpm5": '<param name="city">Paris</param></function>',
        "harmony": '<|message|>{"city": "Paris"}<|call|>',
    }[parser]
    assert prefix.startswith(tools.start)
    plan = OutputPlan(tools=tools, tool_specs=TOOL_SPECS, initial="tool", prefill=prefix[len(tools.start) :])
    completion, _, _ = run(plan, rest)
    assert calls(completion) == [WEATHER] and completion.text == ""


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_two_calls_in_one_turn_split_anywhere(step):
    text = (
        "I'll look both up.\n\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>\n'
    )
    completion, processor, events = run(OutputPlan(tools=tool_format("json_tools")), text, step=step)
    assert calls(completion) == [WEATHER, {"name": "get_time", "arguments": {"zone": "CET"}}]
    assert completion.text == "I'll look both up."
    # Name and id once per call, with empty arguments, then the arguments: wire-formats §1.4.
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.name is not None, d.arguments == "") for d in deltas] == [(0, True, True), (0, False, False), (1, True, True), (1, False, False)]
    assert all(d.id.startswith("call_") for d in deltas if d.name) and deltas[0].id != deltas[2].id
    assert not any("<" in e.text for e in events if isinstance(e, TextDelta))


def test_reasoning_is_separated_at_any_split():
    text = "<think>\nThe user wants a greeting.\n</think>\n\nHello!"
    for step in range(1, len(text) + 1):
        completion, processor, events = run(OutputPlan(OutputFormat(thinking=THINK)), text, step=step)
        assert (completion.reasoning, completion.text) == ("The user wants a greeting.", "Hello!"), step
        assert not any("think>" in getattr(e, "text", "") for e in events)


def test_reasoning_opened_by_the_prompt():
    plan = OutputPlan(OutputFormat(thinking=THINK), initial="reasoning")
    completion, processor, _ = run(plan, "Let me think.\n</think>\n\nThe answer is 4.", step=2)
    assert completion.reasoning == "Let me think." and completion.text == "The answer is 4."
    assert processor.reasoning_tokens > 0


def test_reasoning_strip_drops_it_but_counts_its_tokens():
    text = "<think>secret plan</think>The answer."
    completion, processor, events = run(OutputPlan(OutputFormat(thinking=THINK)), text, reasoning="strip")
    assert completion.text == "The answer." and completion.reasoning == ""
    assert not any(isinstance(e, ReasoningDelta) for e in events)
    # One feed per character here: the reasoning, its end marker and the opening marker's last character.
    assert processor.reasoning_tokens == len(">secret plan</think>")


def test_reasoning_then_a_call():
    text = '<think>Need the weather.</think>\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    completion, _, _ = run(OutputPlan(OutputFormat(thinking=THINK), tools=tool_format("json_tools")), text, step=4)
    assert completion.reasoning == "Need the weather." and completion.text == "" and calls(completion) == [WEATHER]


def test_plain_text_is_untouched_when_nothing_is_parsed():
    text = "  Hello <tool_call> and <think> stay text here.\n"
    completion, _, _ = run(OutputPlan(), text)
    assert completion.text == text


def test_text_that_only_looks_like_a_marker_is_released():
    text = "a < b and <tool_ca is not a call <think"
    completion, _, _ = run(OutputPlan(OutputFormat(thinking=THINK), tools=tool_format("json_tools")), text)
    assert completion.text == text and completion.tool_calls == []


def test_whitespace_inside_an_answer_is_kept():
    text = "Line one.\n\nLine two.  \n"
    completion, _, _ = run(OutputPlan(OutputFormat(thinking=THINK), tools=tool_format("json_tools")), text)
    assert completion.text == text


def test_a_call_cut_off_by_max_tokens_is_dropped_not_shown():
    text = 'Sure.<tool_call>\n{"name": "get_weather", "argum'
    completion, processor, _ = run(OutputPlan(tools=tool_format("json_tools")), text)
    assert completion.text == "Sure." and completion.tool_calls == []
    assert processor.finish_reason("length") == "length"
    assert processor.finish_reason("stop") == "stop"


def test_a_complete_call_without_its_end_marker_still_counts():
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
    completion, _, _ = run(OutputPlan(tools=tool_format("json_tools")), text)
    assert calls(completion) == [WEATHER]


@pytest.mark.parametrize(
    "body",
    ['{"name": "f", "arguments": [1, 2]}', '{"arguments": {}}', "not json at all", '["just", "a list"]', '{"name": "", "arguments": {}}'],
)
def test_malformed_calls_are_dropped(body):
    completion, processor, _ = run(OutputPlan(tools=tool_format("json_tools")), f"<tool_call>{body}</tool_call>Done.")
    assert completion.tool_calls == [] and completion.text == "Done."
    assert processor.finish_reason("stop") == "stop"


def test_arguments_written_as_a_json_string_become_an_object():
    body = '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
    completion, _, _ = run(OutputPlan(tools=tool_format("json_tools")), f"<tool_call>{body}</tool_call>")
    assert calls(completion) == [WEATHER]


def test_at_most_one_call_without_parallel_tool_calls():
    one = SAMPLES["json_tools"]
    completion, _, _ = run(OutputPlan(tools=tool_format("json_tools"), max_calls=1), one + "\n" + one.replace("Paris", "Rome"))
    assert calls(completion) == [WEATHER]


def test_a_model_given_call_id_is_kept():
    completion, _, _ = run(OutputPlan(tools=tool_format("kimi_k2")), SAMPLES["kimi_k2"])
    assert [c.id for c in completion.tool_calls] == ["functions.get_weather:0"]


def test_stop_string_applies_before_routing():
    text = "<think>plan</think>Answer END ignored"
    completion, _, _ = run(OutputPlan(OutputFormat(thinking=THINK)), text, step=3, stop=["END"])
    assert completion.reasoning == "plan" and completion.text == "Answer "


@pytest.mark.parametrize("step", [1, 4])
def test_a_call_straight_out_of_the_reasoning_is_a_call(step):
    """mlx-lm's edge from reasoning to a call: models that start calling before closing their think block."""
    text = "<think>I need the weather." + SAMPLES["json_tools"] + "Done."
    completion, _, _ = run(OutputPlan(OutputFormat(thinking=THINK), tools=tool_format("json_tools")), text, step=step)
    assert (completion.reasoning, calls(completion), completion.text) == ("I need the weather.", [WEATHER], "Done.")


@pytest.mark.parametrize("step", [1, 5])
def test_structural_markers_never_reach_the_answer(step):
    fmt = OutputFormat(markers=("<|open|>response<|sep|>", "<|close|>response<|sep|>"))
    completion, _, _ = run(OutputPlan(fmt), "<|open|>response<|sep|>Hello there.<|close|>response<|sep|>", step=step)
    assert completion.text == "Hello there."


# A channel-structured response format as data (the shape of mlx-lm's Muse Spark format): headers are
# markup, each header leads into the answer, the reasoning or a call.
CHANNELS = OutputFormat(
    response={
        "header": [("to=self<|message|>", "reasoning"), ("to=user<|message|>", "normal"), ("<calls>", "tool")],
        "reasoning": [("<|eom|>", "header")],
        "normal": [("<|eom|>", "header")],
    },
    initial="header",
)


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_a_response_format_routes_its_channels_and_drops_its_headers(step):
    tools = tool_format("json_tools")
    text = "to=self<|message|>Think first.<|eom|><|start|>assistant to=user<|message|>The answer.<|eom|>"
    completion, _, _ = run(OutputPlan(CHANNELS, initial="header"), text, step=step)
    assert (completion.reasoning, completion.text) == ("Think first.", "The answer.")
    # With tools, the format's own edge into "tool" is where calls start: the default marker is not added.
    assert all(marker != tools.start for marker, _ in CHANNELS.transitions(tools)["normal"])


@pytest.mark.parametrize(
    "effort, levels, expected",
    [
        ("high", ("low", "medium", "high"), "high"),
        ("off", ("low", "medium", "high"), "low"),  # a model that cannot stop thinking thinks least
        ("minimal", ("low", "medium", "high"), "low"),
        ("xhigh", ("low", "medium", "high"), "high"),
        ("max", ("low", "medium", "high"), "high"),
        ("medium", ("low", "high"), "high"),  # between two: the higher one
        ("max", ("low", "medium", "high", "max"), "max"),
    ],
)
def test_an_effort_maps_to_the_nearest_level_of_the_model(effort, levels, expected):
    from mlxcli.engine.prompt import nearest_effort

    assert nearest_effort(effort, levels) == expected
