"""Scripted replies shared by the API tests: what the model writes, and what each API must return."""

from __future__ import annotations

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]},
}
TIME_TOOL = {"name": "get_time", "description": "Local time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}

TWO_CALLS = {
    "json": (
        "I'll look both up.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'
    ),
    "xml": (
        "I'll look both up.\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n"
        "</function>\n</tool_call>\n"
        "<tool_call>\n<function=get_time>\n<parameter=zone>\nCET\n</parameter>\n</function>\n</tool_call>"
    ),
}
TWO_CALLS_TEXT = "I'll look both up."
EXPECTED_CALLS = [("get_weather", {"city": "Paris", "days": 2}), ("get_time", {"zone": "CET"})]

# Both template kinds, with markers split across tokens or single tokens.
FORMATS = [("json", False), ("json", True), ("xml", False), ("xml", True)]
FORMAT_IDS = ["json-split", "json-single", "xml-split", "xml-single"]

CALL = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
RESULT = "SUNNY-21C"
ANSWER = "It is sunny and 21°C in Paris."
RESULT_IN_PROMPT = f"<|im_start|>user\n<tool_response>\n{RESULT}\n</tool_response><|im_end|>"
CALL_IN_PROMPT = '<|im_start|>assistant\nLet me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>'

THOUGHT = "The user wants the sum."
REASONED = f"<think>\n{THOUGHT}\n</think>\n\nIt is 4."
REASONED_ANSWER = "It is 4."


def round_trip(prompt: str) -> str:
    """Call the weather tool; once its result is in the prompt, answer."""
    return ANSWER if "<tool_response>" in prompt else CALL


# The weather tool as Responses' flat function tool.
QUESTION_TOOLS = [{"type": "function", **WEATHER_TOOL}]
