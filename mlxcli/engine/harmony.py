"""The Harmony format of OpenAI's gpt-oss models: message headers, channels, recipients and tool calls.

A gpt-oss answer is a run of messages, each ``<|start|>assistant HEADER<|message|>BODY`` ended by
``<|end|>`` (more follows), ``<|return|>`` (the answer is done) or ``<|call|>`` (a tool call: the
model waits for its result). The prompt ends in ``<|start|>assistant``, so the model begins with a
header. A header names the message's channel and, for a tool call, its recipient, which the model
writes in the role part or in the channel part:

    <|channel|>analysis<|message|>…                                        reasoning
    <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{…}   a call
     to=functions.get_weather<|channel|>commentary json<|message|>{…}      the same call
    <|channel|>commentary<|message|>…                                      a preamble: a progress note for the user
    <|channel|>final<|message|>…                                           the answer

The output state machine (output.py) collects a header's text in the ``HEADER`` state and, at
``<|message|>``, hands it to ``route``, which says what the body is: a channel's name, or ``CALL``
for a message to ``functions.NAME`` (on any channel, ``analysis`` included). ``formats.py`` maps
these kinds onto the router's states; a kind it does not map (an unknown channel, a message in
another role, a call to a built-in tool such as ``browser.search``) is dropped. Markers are matched
on decoded text, so they may arrive split across tokens, and header words such as "commentary"
split over two tokens are read whole, once the header has ended.

Calls are parsed from ``HEADER<|message|>ARGUMENTS`` (``parse_tool_call``, with the interface of
mlx-lm's tool parsers). This module renders nothing: prompts come from the model's own chat template
(the ``openai-harmony`` package fetches its tokenizer file at run time, and fails offline).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

log = logging.getLogger("mlxcli.engine")

START, END, MESSAGE, CHANNEL = "<|start|>", "<|end|>", "<|message|>", "<|channel|>"
CONSTRAIN, RETURN, CALL_END = "<|constrain|>", "<|return|>", "<|call|>"
STOP_TOKENS = (RETURN, CALL_END)  # the end of an answer, and of a tool call: both end generation
VOCABULARY = (START, END, MESSAGE, CHANNEL, RETURN, CALL_END)  # a tokenizer with these speaks Harmony
MODEL_TYPES = ("gpt_oss",)

HEADER, BODY = "header", "message"  # the state machine's states
CALL = "call"  # the kind of a message addressed to a function
FUNCTIONS = "functions."

_ENDS = (END, CALL_END, RETURN, START)  # each ends a message (``<|start|>`` one the model did not end)
# A header ends at <|message|>; one ended before it had a body starts again. Inside a body, stray
# header markers are dropped.
TRANSITIONS = {
    HEADER: [(MESSAGE, BODY)] + [(marker, HEADER) for marker in _ENDS],
    BODY: [(marker, HEADER) for marker in _ENDS] + [(marker, BODY) for marker in (CHANNEL, CONSTRAIN, MESSAGE)],
}

# mlx-lm's tool-parser interface: the text that begins a call (written into the prompt for
# tool_choice "required": the model then names the function), and the one that ends it.
tool_call_start = f"{CHANNEL}commentary to={FUNCTIONS}"
tool_call_end = CALL_END
NAMED_CALL_PREFIX = f"{tool_call_start}{{name}} {CONSTRAIN}json"

_RECIPIENT = re.compile(r"to=([^\s<]+)")
_CHANNEL_NAME = re.compile(re.escape(CHANNEL) + r"\s*([^\s<]*)")
_NAME = re.compile(r"^\s*([^\s<]+)")


def speaks_harmony(vocabulary: Any, template: str, model_type: str | None) -> bool:
    """A gpt-oss model, or a tokenizer whose special tokens and chat template are Harmony's."""
    return model_type in MODEL_TYPES or (all(token in vocabulary for token in VOCABULARY) and CHANNEL in template)


def route(header: str) -> tuple[str, str]:
    """(the kind of the message this header begins, the text its body is read with): a channel's name
    with no text, ``CALL`` with the header itself (``parse_tool_call`` reads the function's name from
    it), or an empty kind for a message no one is shown."""
    role_part = header.split(CHANNEL, 1)[0]
    role = next((word for word in role_part.split() if not word.startswith("to=")), "assistant")
    if role != "assistant":  # the model writing a tool's result or a user's turn itself
        return "", ""
    recipient = _RECIPIENT.search(header)
    if recipient is not None:
        if recipient.group(1).startswith(FUNCTIONS):
            return CALL, header + MESSAGE
        log.warning("dropped a message to %s: not a function this server offers", recipient.group(1))
        return "", ""
    channel = _CHANNEL_NAME.search(header)
    return (channel.group(1) if channel else ""), ""


def parse_tool_call(text: str, tools: Any = None) -> dict[str, Any]:
    """``HEADER<|message|>ARGUMENTS`` → ``{"name", "arguments"}``; ValueError when it is no call. The header
    is a whole one (from ``route``), or, read as mlx-lm reads a call (the text after ``tool_call_start``),
    what follows ``to=functions.``: the name first."""
    header, _, body = text.partition(MESSAGE)
    recipient = _RECIPIENT.search(header)
    if recipient is not None:
        name = recipient.group(1).removeprefix(FUNCTIONS) if recipient.group(1).startswith(FUNCTIONS) else ""
    else:
        name = next(iter(_NAME.findall(header)), "")
    if not name:
        raise ValueError("no function named in the header")
    body = body.strip()
    if not body:
        return {"name": name, "arguments": {}}
    # Text after the object (a model that ran on without <|call|>) is not part of the call.
    arguments, _ = json.JSONDecoder().raw_decode(body)
    if not isinstance(arguments, dict):
        raise ValueError("the arguments are not a JSON object")
    return {"name": name, "arguments": arguments}
