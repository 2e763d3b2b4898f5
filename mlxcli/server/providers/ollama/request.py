"""Ollama's ``/api/chat`` and ``/api/generate``: the request, and how it is answered.

Streaming is the default. An empty ``messages`` (chat) or ``prompt`` (generate) only loads the
model, or with ``keep_alive`` 0 unloads it, as Ollama does. ``images`` (base64) go to a vision
model as the message's image parts. Refused with a 400 that says why: ``logprobs``, and on
generate ``raw``, ``template``, ``suffix`` and the deprecated ``context``.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import falcon

from mlxcli.core.collect import Completion
from mlxcli.core.errors import InvalidRequest
from mlxcli.core.request import ChatRequest, Effort, Grammar, ImageInput, Message, Sampling, ToolCall, ToolSpec, new_id
from mlxcli.server import images
from mlxcli.server.http import read_json
from mlxcli.server.providers import common
from mlxcli.server.providers.ollama import response
from mlxcli.server.validate import Obj, is_number, objects
from mlxcli.store import Turn

ROLES = ("system", "user", "assistant", "tool")
MAX_MESSAGES = 4096
MAX_TOOLS = 128
MAX_ID = 256
THINK_LEVELS = ("low", "medium", "high", "max")
# Neutral sampling field → Ollama's option.
SAMPLING = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
    "repetition_penalty": "repeat_penalty", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}
OPTIONS = frozenset({*SAMPLING.values(), "seed", "num_predict", "stop", "num_ctx"})
# Accepted and left alone: where and how fast the model runs (mlxcli decides), and samplers mlx-lm does
# not have, which Ollama's own MLX runner ignores as well (README, Ollama API).
IGNORED_OPTIONS = frozenset({
    "num_keep", "repeat_last_n", "typical_p", "tfs_z", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
    "num_batch", "num_gpu", "main_gpu", "num_thread", "draft_num_predict", "use_mmap", "use_mlock", "numa",
    "low_vram", "f16_kv", "logits_all", "vocab_only", "embedding_only",
})
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class OllamaCall:
    """One chat or generate request: the neutral request and how to answer it."""

    request: ChatRequest
    stream: bool
    kind: str  # "chat" | "generate": the shape of the answer
    model: str  # echoed as the client wrote it
    load: bool = False  # nothing to answer: only load the model (or unload it, keep_alive 0)
    store: bool | None = None  # Ollama has no `store`: only --store-chat stores these
    id: str = field(default_factory=lambda: new_id("ollama-"))
    started: float = field(default_factory=time.perf_counter)  # total_duration counts from here

    def response(self, completion: Completion, model: str) -> dict[str, Any]:
        return response.answer(self.kind, self.model, completion, self.started)

    def encoder(self, model: str, prompt_tokens: int) -> response.StreamEncoder:
        return response.StreamEncoder(self.kind, self.model, self.started)

    def turn(self, completion: Completion, model: str) -> Turn:
        return Turn.from_exchange(self.id, f"ollama.{self.kind}", model, self.request.messages, completion)

    def loaded(self) -> dict[str, Any]:
        """The answer to a load (or unload) request."""
        return response.loaded(self.kind, self.model, unloaded=self.request.keep_alive == 0)


def parse_chat(body: dict[str, Any]) -> OllamaCall:
    """Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    echo, model = model_names(o)
    messages = link_tool_results([_message(m) for m in objects(o.list("messages", max_items=MAX_MESSAGES))])
    tools = [_tool(t) for t in objects(o.list("tools", max_items=MAX_TOOLS))]
    request = ChatRequest(messages, model=model, tools=tools, tool_choice="auto" if tools else "none", reasoning=_think(o))
    return _call(o, request, "chat", echo, load=not messages)


def parse_generate(body: dict[str, Any]) -> OllamaCall:
    o = Obj(body)
    echo, model = model_names(o)
    o.unsupported("raw", "is not supported: the prompt always goes through the model's chat template")
    o.unsupported("template", "is not supported: prompts are rendered with the model's own chat template")
    o.unsupported("suffix", "(fill-in-the-middle) is not supported by this server")
    o.unsupported("context", "is deprecated by Ollama and not supported: send the conversation to /api/chat")
    pictures = _images(o)
    prompt, system = o.str("prompt", default=""), o.str("system")
    messages = [Message(role="system", content=system)] if system else []
    if prompt or pictures:
        messages.append(Message(role="user", content=prompt, images=pictures))
    request = ChatRequest(messages, model=model, tool_choice="none", reasoning=_think(o))
    return _call(o, request, "generate", echo, load=not prompt)


def read_body(req: falcon.Request, max_bytes: int) -> dict[str, Any]:
    """A JSON body under any Content-Type: Ollama reads JSON whatever the header says, and its docs'
    ``curl -d`` lines send it as form-urlencoded."""
    return read_json(req, max_bytes, any_type=True)


def model_names(o: Obj, key: str = "model") -> tuple[str, str]:
    """(the name to echo, the name to look up): Ollama's default tag ``:latest`` names the model itself."""
    name = o.str(key, required=True, allow_empty=False, max_len=256, printable=True)
    return name, name.removesuffix(":latest")


def _call(o: Obj, request: ChatRequest, kind: str, echo: str, *, load: bool) -> OllamaCall:
    """What chat and generate share: stream, format, options, keep_alive and the flags left alone."""
    request.response_format = _format(o)
    o.unsupported("logprobs")
    o.int("top_logprobs", lo=0, hi=20)
    o.bool("truncate")  # a prompt over the window is refused (400), never truncated
    o.bool("shift")
    request.sampling, request.context_window = parse_options(o)
    request.keep_alive = keep_alive(o)
    return OllamaCall(request, stream=o.bool("stream", default=True), kind=kind, model=echo, load=load)


def _format(o: Obj) -> Grammar | None:
    """``format``: ``"json"`` (any JSON object) or a JSON Schema the answer must match; ``""`` is none."""
    value = o.raw("format")
    if value in (None, ""):
        return None
    if value == "json":
        return Grammar("json", param="format")
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid value for 'format': expected \"json\" or a JSON Schema object.", param="format")
    return common.json_schema(o, "format")


def _images(o: Obj) -> list[ImageInput]:
    """``images``: base64 images (no data: prefix), shown to the model before the message's text."""
    return [images.from_base64(data, param) for data, param in _strings(o.list("images", max_items=images.MAX_IMAGES + 1))]


def _strings(items: list[tuple[Any, str]]) -> list[tuple[str, str]]:
    for value, param in items:
        if not isinstance(value, str):
            raise InvalidRequest(f"Invalid type for '{param}': expected a base64 string.", param=param)
    return items


def _message(m: Obj) -> Message:
    role = m.str("role", required=True)
    if role.lower() not in ROLES:  # Ollama takes roles in any case
        raise InvalidRequest(f"Invalid value for '{m.param('role')}': expected one of {', '.join(ROLES)}, got {role!r}.", param=m.param("role"))
    message = Message(role=role.lower(), content=m.str("content", default=""), images=_images(m))
    if message.role == "assistant":
        message.reasoning = m.str("thinking") or None  # a client echoing earlier thinking back
        message.tool_calls = [_tool_call(call) for call in objects(m.list("tool_calls", max_items=MAX_TOOLS))]
    elif message.role == "tool":
        message.name = m.str("tool_name", max_len=MAX_ID)
        message.tool_call_id = m.str("tool_call_id", max_len=MAX_ID)
    return message


def _tool_call(call: Obj) -> ToolCall:
    """An earlier call; its ``arguments`` an object (Ollama's form) or a JSON object as text."""
    function = call.obj("function", required=True)
    arguments = function.raw("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = None
    if arguments is not None and not isinstance(arguments, dict):
        raise InvalidRequest(f"Invalid value for '{function.param('arguments')}': expected an object.", param=function.param("arguments"))
    return ToolCall(
        id=call.str("id", max_len=MAX_ID) or new_id("call_"),
        name=function.str("name", required=True, max_len=MAX_ID),
        arguments=json.dumps(arguments or {}),
    )


def link_tool_results(messages: list[Message]) -> list[Message]:
    """Give each tool result the id of the call it answers: Ollama clients name the tool (``tool_name``)
    or nothing, and some chat templates need the id. A result answers the first call still open,
    of that name if it has one."""
    open_calls: list[ToolCall] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            open_calls = list(m.tool_calls)
        elif m.role == "tool" and open_calls:
            known = next((c for c in open_calls if c.id == m.tool_call_id), None)
            call = known or next((c for c in open_calls if m.name in (None, c.name)), None)
            if call is not None:
                open_calls.remove(call)
                m.tool_call_id, m.name = call.id, m.name or call.name
    return messages


def _tool(t: Obj) -> ToolSpec:
    t.str("type", choices=("function",))
    return common.tool(t.obj("function", required=True))


def _think(o: Obj) -> Effort | None:
    """``think``: true (Ollama's level for it: medium), false (off) or a level; absent: the model's default."""
    value = o.raw("think")
    if value is None or isinstance(value, bool):
        return None if value is None else ("medium" if value else "off")
    if value not in THINK_LEVELS:
        raise InvalidRequest(f"Invalid value for 'think': expected true, false or one of {', '.join(THINK_LEVELS)}.", param="think")
    return value


def parse_options(o: Obj) -> tuple[Sampling, int | None]:
    """``options`` → (sampling, the context window asked for with ``num_ctx``)."""
    opts = o.obj("options")
    if opts is None:
        return Sampling(), None
    for name in opts.data:
        if name not in OPTIONS and name not in IGNORED_OPTIONS:
            raise InvalidRequest(f"Unknown option '{opts.param(name)}'.", param=opts.param(name))
        value = opts.raw(name)
        if name in IGNORED_OPTIONS and value is not None and not isinstance(value, (bool, int, float)):
            raise InvalidRequest(f"Invalid type for '{opts.param(name)}': expected a number or a boolean.", param=opts.param(name))
    seed = opts.int("seed", lo=-(2**63), hi=2**64 - 1)
    predict = opts.int("num_predict", lo=-2, hi=common.MAX_INT)
    sampling = Sampling(
        **common.sampling_fields(opts, SAMPLING),
        seed=None if seed is None or seed < 0 else seed,  # negative: a random seed
        # -1 and -2 (Ollama: no limit, fill the context) and 0: up to the end of the window
        max_tokens=None if predict is None else predict if predict > 0 else common.MAX_INT,
        stop=common.stop(opts, "stop"),
    )
    return sampling, opts.int("num_ctx", lo=1, hi=common.MAX_INT)


def keep_alive(o: Obj) -> float | None:
    """``keep_alive`` in seconds: a number of seconds or a Go duration ("5m", "1h30m"); negative: forever."""
    value = o.raw("keep_alive")
    if value is None:
        return None
    if is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration(value.strip())
    else:
        raise InvalidRequest("Invalid type for 'keep_alive': expected a number of seconds or a duration such as \"5m\".", param="keep_alive")
    return math.inf if seconds < 0 else seconds


def _duration(text: str) -> float:
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.removeprefix("+"))
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", body):
        return sign * float(body)  # a bare number: seconds
    parts = DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        raise InvalidRequest(f"Invalid value for 'keep_alive': {text!r} is not a duration (such as \"5m\" or \"1h30m\").", param="keep_alive")
    return sign * sum(float(number) * SECONDS[unit] for number, unit in parts)
