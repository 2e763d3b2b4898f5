"""The scripted model behind the real `mlxcli serve`, for clients in other processes (the agent CLIs).

    python -m tests.support.scripted_server --script agent [--context-window N] [--tokenizer DIR] [SERVE FLAGS]

Every flag it does not know goes to `mlxcli serve` (``--port``, ``--max-tokens``, ``--store-path``, ...): the
same command, settings, logging (access log lines included) and shutdown; only the engine's first (default)
model is the scripted one (tests/support/models.py), named ``scripted``, with SmolLM2's tokenizer and chat
template; each ``--model`` is served after it as `mlxcli serve` serves it (the soak's vision and embedding
models). That template cannot render tools, so they reach the model in the fallback format (engine/prompt.py: the tools as
JSON lines in the system prompt, results as ``<tool_response>`` user messages) and its calls are written the
way the server parses them back (json_tools: ``<tool_call>{"name": …, "arguments": …}</tool_call>``).

A script is ``respond(prompt text) → reply text``; ``SCRIPTS`` lists them by name (add one there):
- ``agent``: when tools are offered and the last message is not a tool result, a call to one of them (a
  shell, to run ``ls``, or a listing tool if there is one) with arguments its schema accepts (continuing the start of a call the prompt holds, for a forced
  tool_choice); otherwise a one-line answer that
  ends, quoting the start of the tool result it follows (up to any ``<system-reminder>``), or a JSON object
  where the prompt asks for one ``with a single "NAME" field`` (Claude Code's session title). It logs each
  decision (logger ``mlxcli.scripted``): a judge reads from the server log which tool was called and what
  was answered.
- ``echo``: the last ``NONCE-…`` word of the last user message (``no nonce`` when it has none), repeated N
  times where that message says ``REPEAT-N`` (a long answer); where the prompt asks for JSON with a single field,
  that field holding it; when tools are offered and the last message is not a tool result, a call to one of
  them whose string arguments are the nonce (so that every call and answer tells which request it belongs to).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("mlxcli.scripted")

TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.S)
REPLY = "<|im_start|>assistant\n"  # the open turn the prompt ends with
TOOLS_START, TOOLS_END = "XML tags:\n<tools>\n", "\n</tools>"  # as engine/prompt.py's FALLBACK_INSTRUCTIONS writes them
RESULT = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.S)
CALLED = re.compile(r'<tool_call>\n(\{"name": .*?)\n</tool_call>', re.S)
NONCE = re.compile(r"NONCE-[0-9A-Za-z]+")
REPEAT = re.compile(r"\bREPEAT-(\d+)\b")
JSON_FIELD = re.compile(r'JSON with a single "(\w+)" field')  # Claude Code's title request (its output_config asks for that JSON)

# The tools an agent script would rather call (a shell, to run `ls`; else a listing), lower-cased; else the first one.
PREFERRED_TOOLS = ("bash", "shell", "shell_command", "exec_command", "glob", "list", "ls", "list_dir")
# Values for required arguments by name (a listing everywhere); anything else gets a value of its type.
ARGUMENT_HINTS = {"pattern": "*", "command": "ls", "cmd": "ls", "path": ".", "city": "Paris"}


@dataclass
class Prompt:
    """A rendered ChatML prompt read back: its messages (role, text) before the open assistant turn, and the
    tools its system message offers (OpenAI's nested form)."""

    messages: list[tuple[str, str]]
    tools: list[dict[str, Any]]
    prefill: str  # the start of the reply the prompt already holds (a forced tool call's)

    @classmethod
    def read(cls, text: str) -> "Prompt":
        messages = [(m.group(1), m.group(2)) for m in TURN.finditer(text)]
        tools: list[dict[str, Any]] = []
        system = messages[0][1] if messages and messages[0][0] == "system" else ""
        start = system.rfind(TOOLS_START)
        if start >= 0:
            block = system[start + len(TOOLS_START) : system.find(TOOLS_END, start)]
            tools = [json.loads(line) for line in block.splitlines() if line.strip()]
        return cls(messages, tools, text[text.rindex(REPLY) + len(REPLY) :] if REPLY in text else "")

    @property
    def last(self) -> tuple[str, str]:
        return self.messages[-1] if self.messages else ("user", "")

    def tool_results(self) -> list[str]:
        """The tool results the last message carries (none unless it is a turn of results)."""
        role, text = self.last
        return RESULT.findall(text) if role == "user" and text.startswith("<tool_response>") else []

    def last_call(self) -> str:
        """The name of the last tool the assistant called, or ``a tool``."""
        for role, text in reversed(self.messages):
            calls = CALLED.findall(text) if role == "assistant" else []
            if calls:
                return json.loads(calls[-1])["name"]
        return "a tool"


def agent(text: str) -> str:
    prompt = Prompt.read(text)
    results = prompt.tool_results()
    if prompt.tools and not results:
        return _call(prompt)
    if results:
        quoted = " ".join(results[0].split("<system-reminder>")[0].split())[:60]  # Claude Code's reminders follow results
        answer = f"The {prompt.last_call()} tool answered: {quoted or '(nothing)'}"
    else:
        answer = "Hello from the scripted agent."
        field = JSON_FIELD.search(text)
        if field is not None:
            answer = json.dumps({field.group(1): answer})
    log.info("agent: final answer %s", json.dumps(answer))
    return answer


def echo(text: str) -> str:
    prompt = Prompt.read(text)
    users = [body for role, body in prompt.messages if role == "user"]
    found = NONCE.findall(users[-1]) if users else []
    nonce = found[-1] if found else "no nonce"
    if prompt.tools and not prompt.tool_results():
        return _call(prompt, fill=nonce)
    repeat = REPEAT.search(users[-1]) if users else None
    answer = " ".join([nonce] * int(repeat.group(1))) if repeat else nonce
    field = JSON_FIELD.search(text)
    return json.dumps({field.group(1): answer}) if field else answer


SCRIPTS: dict[str, Callable[[str], str]] = {"agent": agent, "echo": echo}


def _call(prompt: Prompt, fill: str | None = None) -> str:
    """A call of the tool to call (its string arguments ``fill``, when given), written as the server parses it."""
    function = _pick(prompt.tools, prompt.prefill)["function"]
    call = {"name": function["name"], "arguments": _arguments(function.get("parameters") or {}, fill)}
    log.info("%s: tool call %s %s", "agent" if fill is None else "echo", call["name"], json.dumps(call["arguments"]))
    reply = f"<tool_call>\n{json.dumps(call)}\n</tool_call>"
    return reply[len(prompt.prefill) :] if reply.startswith(prompt.prefill) else reply


def _pick(tools: list[dict[str, Any]], prefill: str) -> dict[str, Any]:
    """The tool a forced call names (its start is in the prompt), else a preferred one, else the first."""
    named = re.search(r'"name": "([^"]+)"', prefill)
    by_name = {t["function"]["name"]: t for t in tools}
    if named is not None and named.group(1) in by_name:
        return by_name[named.group(1)]
    lowered = {name.lower(): t for name, t in by_name.items()}
    return next((lowered[name] for name in PREFERRED_TOOLS if name in lowered), tools[0])


def _arguments(schema: dict[str, Any], fill: str | None = None) -> dict[str, Any]:
    """A value for each required property of an object schema (``fill`` for free strings, when given)."""
    properties = schema.get("properties") or {}
    return {name: _value(name, properties.get(name) or {}, fill) for name in schema.get("required") or []}


def _value(name: str, schema: dict[str, Any], fill: str | None = None) -> Any:
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _value(name, schema[key][0], fill)
    kind = schema.get("type", "string")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    hint = ARGUMENT_HINTS.get(name.lower())
    if kind == "array":
        item = _value(name, schema.get("items") or {}, fill)
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "object":
        return _arguments(schema, fill)
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if fill is not None:
        return fill
    return hint if isinstance(hint, str) else "x"


def _start_engine(options: argparse.Namespace, specs, *, fast_path: bool, settings=None, progress=None):
    """`mlxcli serve`'s start_engine, serving the scripted model first, then ``specs`` (its --model flags)."""
    from mlxcli.engine import platform

    platform.configure(fast_path)  # before anything imports mlx
    from mlxcli.engine.engine import EngineSettings, MlxEngine
    from mlxcli.engine.kinds import prepare
    from mlxcli.engine.loading import read_config, tokenizer_of
    from mlxcli.models import pull
    from tests.support.models import scripted_model

    settings = settings or EngineSettings()
    directory = options.tokenizer or pull("smollm2-135m", progress=progress).path
    tokenizer = tokenizer_of(directory, read_config(directory))
    respond = SCRIPTS[options.script]
    model = scripted_model(directory, respond, tokenizer=tokenizer, context_window=options.context_window)
    log.info("serving the scripted model: script %s, context window %d", options.script, options.context_window)
    others = [prepare(spec, settings, progress) for spec in specs or ()]
    return MlxEngine([model, *others], settings).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.scripted_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", required=True, choices=sorted(SCRIPTS), help="How the model answers.")
    parser.add_argument("--context-window", type=int, default=65536, help="The model's context window, in tokens.")
    parser.add_argument("--tokenizer", type=Path, help="SmolLM2's model directory (default: pulled, as `mlxcli pull smollm2-135m`).")
    options, serve_args = parser.parse_known_args(argv)
    from mlxcli.cli import app
    from mlxcli.cli import serve as serve_command

    serve_command.start_engine = partial(_start_engine, options)
    app(["serve", *serve_args], prog_name=parser.prog)


if __name__ == "__main__":
    main()
