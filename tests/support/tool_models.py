"""Tokenizers with tool-capable chat templates, for scripted models that call tools and reason.

SmolLM2's tokenizer with its chat template replaced by a Qwen3-style one (tools
rendered in the system prompt, ``<tool_call>`` JSON calls, ``<tool_response>``
results, ``<think>`` blocks and the ``enable_thinking`` switch), or a
Qwen3-Coder-style one (XML calls). ``single_token_markers`` adds ``<think>``,
``</think>``, ``<tool_call>`` and ``</tool_call>`` to the vocabulary, as Qwen's
tokenizers have them; without it every marker is split across several tokens.
"""

from __future__ import annotations

from pathlib import Path

MARKERS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]

_SYSTEM_AND_TOOLS = r"""
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}
    {{- TOOLS_HEADER }}
    {%- for tool in tools %}{{- TOOL_LINE }}{%- endfor %}
    {{- TOOLS_FOOTER }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
"""

# Qwen3 shows earlier reasoning only for the turn under way: after the last user query.
_LAST_QUERY = r"""
{%- set ns = namespace(last_query=messages | length - 1) %}
{%- for message in messages %}
    {%- if message.role == 'user' %}{%- set ns.last_query = loop.index0 %}{%- endif %}
{%- endfor %}
"""

_MESSAGES = r"""
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant\n' }}
        {%- if message.reasoning_content and SHOW_REASONING %}{{- '<think>\n' + message.reasoning_content + '\n</think>\n\n' }}{%- endif %}
        {{- message.content }}
        {%- for tool_call in message.tool_calls or [] %}
            {%- if message.content or not loop.first %}{{- '\n' }}{%- endif %}
            {%- set tool_call = tool_call.function %}
            CALL
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    GENERATION
{%- endif %}
"""

_JSON_CALL = r"""{{- '<tool_call>\n{"name": "' + tool_call.name + '", "arguments": ' }}
            {%- if tool_call.arguments is string %}{{- tool_call.arguments }}{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}
            {{- '}\n</tool_call>' }}"""

_XML_CALL = r"""{{- '<tool_call>\n<function=' + tool_call.name + '>\n' }}
            {%- for key, value in tool_call.arguments.items() %}
                {{- '<parameter=' + key + '>\n' }}{{- value if value is string else value | tojson }}{{- '\n</parameter>\n' }}
            {%- endfor %}
            {{- '</function>\n</tool_call>' }}"""

_JSON_TOOLS = {
    "TOOLS_HEADER": r"'# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>'",
    "TOOL_LINE": r"'\n' + (tool | tojson)",
    "TOOLS_FOOTER": r"""'\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'""",
}

_XML_TOOLS = {
    "TOOLS_HEADER": r"'# Tools\n\nYou have access to the following functions:\n\n<tools>'",
    "TOOL_LINE": r"'\n<function>\n<name>' + tool.function.name + '</name>\n<parameters>' + (tool.function.parameters | tojson) + '</parameters>\n</function>'",
    "TOOLS_FOOTER": r"""'\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n</function>\n</tool_call><|im_end|>\n'""",
}

# Qwen3: the model opens its own think block; enable_thinking=false writes an empty one.
_THINK_OPTIONAL = r"""{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}"""
# Thinking-only models (Qwen3 2507 Thinking, DeepSeek-R1): the template opens the think block.
_THINK_OPENED = r"""{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- else %}{{- '<think>\n' }}{%- endif %}"""


def chat_template(calls: str = "json", thinking: str = "optional", history: str = "kept") -> str:
    """A Qwen3-style template: ``calls`` "json" (Qwen3) or "xml" (Qwen3-Coder, Qwen3.5);
    ``thinking`` "optional" (the model opens <think>) or "opened" (the prompt opens it); earlier reasoning
    ``history`` "kept" (every turn's) or "dropped" before the last user message (as Qwen3's own template does)."""
    parts = _JSON_TOOLS if calls == "json" else _XML_TOOLS
    head = (_LAST_QUERY if history == "dropped" else "") + _SYSTEM_AND_TOOLS
    for key, value in parts.items():
        head = head.replace(key, value)
    body = _MESSAGES.replace("CALL", _JSON_CALL if calls == "json" else _XML_CALL)
    body = body.replace("GENERATION", _THINK_OPTIONAL if thinking == "optional" else _THINK_OPENED)
    body = body.replace("SHOW_REASONING", "loop.index0 > ns.last_query" if history == "dropped" else "true")
    return (head + body).strip()


def make_tool_tokenizer_dir(src: Path, dst: Path, template: str, *, single_token_markers: bool = False) -> Path:
    """A copy of the tokenizer in ``src`` with ``template`` as its chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    if single_token_markers:
        tokenizer.add_tokens(MARKERS)  # plain (non-special) added tokens, as in Qwen's tokenizers
    tokenizer.chat_template = template
    tokenizer.save_pretrained(dst)
    return dst
