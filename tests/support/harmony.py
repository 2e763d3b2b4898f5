"""gpt-oss without its weights: a Harmony tokenizer and chat template, a tiny random gpt_oss model, replies.

The tokenizer is SmolLM2's with Harmony's special tokens added (single tokens, as in gpt-oss's
o200k_harmony; words such as "commentary" still split over several tokens). The chat template
is written here from the Harmony format, and takes what gpt-oss's own template takes: the
``reasoning_effort``, ``model_identity`` and ``builtin_tools`` kwargs, an assistant's reasoning in
``thinking``, one tool call per assistant message (a result is named after the call before it),
and either reasoning or text beside a call, not both. Like gpt-oss's, it shows the model the
reasoning of a turn's calls only until the turn has a final answer, and ends earlier answers with
``<|end|>`` (``<|return|>`` only ends a conversation rendered for training).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.models import copy_tokenizer

SPECIAL_TOKENS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>"]
IDENTITY = "You are a helpful assistant."

TEMPLATE = r"""
{%- set identity = model_identity if model_identity is defined else "You are a helpful assistant." -%}
{%- set effort = reasoning_effort if reasoning_effort is defined else "medium" -%}
{{- "<|start|>system<|message|>" + identity + "\nReasoning: " + effort + "\n\n" -}}
{%- if builtin_tools -%}{{- "# Built-in tools: " + builtin_tools | join(", ") + "\n\n" -}}{%- endif -%}
{{- "# Valid channels: analysis, commentary, final. Channel must be included for every message." -}}
{%- if tools -%}{{- "\nCalls to these tools must go to the commentary channel: 'functions'." -}}{%- endif -%}
{{- "<|end|>" -}}
{%- set rest = messages -%}
{%- set instructions = "" -%}
{%- if messages and messages[0].role in ("system", "developer") -%}
    {%- set instructions = messages[0].content -%}
    {%- set rest = messages[1:] -%}
{%- endif -%}
{%- if instructions or tools -%}
    {{- "<|start|>developer<|message|>" -}}
    {%- if instructions -%}{{- "# Instructions\n\n" + instructions -}}{%- endif -%}
    {%- if instructions and tools -%}{{- "\n\n" -}}{%- endif -%}
    {%- if tools -%}
        {{- "# Tools\n\n## functions\n\nnamespace functions {\n\n" -}}
        {%- for tool in tools -%}
            {{- "// " + (tool.function.description or "") + "\ntype " + tool.function.name -}}
            {{- " = (_: " + tool.function.parameters | tojson + ") => any;\n\n" -}}
        {%- endfor -%}
        {{- "} // namespace functions" -}}
    {%- endif -%}
    {{- "<|end|>" -}}
{%- endif -%}
{%- set state = namespace(last_call=none) -%}
{%- for message in rest -%}
    {%- if message.role == "user" -%}
        {{- "<|start|>user<|message|>" + message.content + "<|end|>" -}}
    {%- elif message.role == "assistant" and message.tool_calls -%}
        {%- set answered = namespace(later=false) -%}
        {%- for later in rest[loop.index:] -%}
            {%- if later.role == "assistant" and not later.tool_calls -%}{%- set answered.later = true -%}{%- endif -%}
        {%- endfor -%}
        {%- if message.content and message.thinking -%}
            {{- raise_exception("an assistant message with a tool call takes thinking or content, not both") -}}
        {%- endif -%}
        {%- set analysis = message.thinking or message.content -%}
        {%- if analysis and not answered.later -%}
            {{- "<|start|>assistant<|channel|>analysis<|message|>" + analysis + "<|end|>" -}}
        {%- endif -%}
        {%- set call = message.tool_calls[0].function -%}
        {{- "<|start|>assistant to=functions." + call.name + "<|channel|>commentary <|constrain|>json<|message|>" -}}
        {{- (call.arguments if call.arguments is string else call.arguments | tojson) + "<|call|>" -}}
        {%- set state.last_call = call.name -%}
    {%- elif message.role == "assistant" -%}
        {%- if loop.last and not add_generation_prompt -%}
            {%- if message.thinking -%}
                {{- "<|start|>assistant<|channel|>analysis<|message|>" + message.thinking + "<|end|>" -}}
            {%- endif -%}
            {{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|return|>" -}}
        {%- else -%}
            {{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|end|>" -}}
        {%- endif -%}
        {%- set state.last_call = none -%}
    {%- elif message.role == "tool" -%}
        {%- if state.last_call is none -%}
            {{- raise_exception("a tool result with no tool call before it") -}}
        {%- endif -%}
        {{- "<|start|>functions." + state.last_call + " to=assistant<|channel|>commentary<|message|>" -}}
        {{- message.content | tojson + "<|end|>" -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- "<|start|>assistant" -}}{%- endif -%}
"""


def make_harmony_tokenizer_dir(src: Path, dst: Path) -> Path:
    """SmolLM2's tokenizer in ``src`` with Harmony's special tokens, the template above, and
    ``<|return|>`` as its end-of-sequence token (as gpt-oss's tokenizer has it)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS, "eos_token": "<|return|>"})
    tokenizer.chat_template = TEMPLATE.strip()
    tokenizer.save_pretrained(dst)
    return dst


def make_tiny_gpt_oss_dir(tokenizer_dir: Path, dst: Path, *, seed: int = 0) -> Path:
    """A random 2-layer gpt_oss (mlx-lm's architecture: attention sinks, sliding and full attention,
    4 experts) with the Harmony tokenizer, saved as an MLX model directory. Its config names only
    ``<|return|>`` as end-of-sequence, as gpt-oss's config.json does (``<|call|>`` is in its
    generation_config.json): the format itself must stop at ``<|call|>``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import gpt_oss
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = {
        "model_type": "gpt_oss",
        "hidden_size": 64,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"],
        "rope_theta": 150000,
        "rms_norm_eps": 1e-5,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|return|>"),
    }
    mx.random.seed(seed)
    model = gpt_oss.Model(gpt_oss.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    dst.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(dst / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (dst / "config.json").write_text(json.dumps(config))
    copy_tokenizer(tokenizer_dir, dst)
    for extra in tokenizer_dir.glob("*.jinja"):  # newer transformers save the template on its own
        (dst / extra.name).write_text(extra.read_text())
    return dst


# ---- what a gpt-oss model writes --------------------------------------------


def msg(channel: str, body: str, *, to: str | None = None, end: str = "<|end|>", start: bool = True, in_role: bool = False) -> str:
    """One Harmony message as the model writes it after the prompt's ``<|start|>assistant``: with
    ``start`` its own ``<|start|>assistant`` (every message but the first has one); ``to`` its
    recipient, in the channel header or, ``in_role``, the role header."""
    role = "<|start|>assistant" if start else ""
    recipient = f" to={to}" if to else ""
    constrain = " <|constrain|>json" if to else ""
    if in_role:
        return f"{role}{recipient}<|channel|>{channel}{constrain}<|message|>{body}{end}"
    return f"{role}<|channel|>{channel}{recipient}{constrain}<|message|>{body}{end}"


def reply(*messages: str) -> str:
    """Messages after the prompt's ``<|start|>assistant``: the first one's header follows it directly."""
    first, *rest = messages
    return first.removeprefix("<|start|>assistant") + "".join(rest)
