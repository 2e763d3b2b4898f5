"""How each agent CLI is pointed at an mlxcli server: its command line and environment.

The variables follow ``ollama launch`` (ollama/ollama cmd/launch/{claude,codex,opencode}.go) and the agents'
own settings; nothing is written to the user's config files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

KEY_VARIABLE = "MLXCLI_AGENT_KEY"  # Codex reads its provider's API key from the variable it is told


@dataclass(frozen=True)
class Target:
    """The served model an agent is pointed at."""

    url: str  # the server's root, without /v1
    model: str  # its served name
    context_window: int  # in tokens, as the server reports it
    api_key: str  # sent to the server (any value when it wants none)


@dataclass
class Plan:
    args: list[str]  # after the program's name
    env: dict[str, str] = field(default_factory=dict)


def claude(target: Target, extra: list[str]) -> Plan:
    """Claude Code: every model tier and subagent on the served model, its compaction at the real window (it
    assumes 200k tokens for a model it does not know), and the two texts that would change its prompt on every
    turn turned off (the attribution header, the "tokens left" reminder)."""
    model = target.model
    env = {
        "ANTHROPIC_BASE_URL": target.url,
        "ANTHROPIC_AUTH_TOKEN": target.api_key,
        "ANTHROPIC_API_KEY": "",  # a key of the user's for Anthropic's own API is not sent here
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "CLAUDE_CODE_SUBAGENT_MODEL": model,
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW": str(target.context_window),
        "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
        "CLAUDE_CODE_TOTAL_TOKENS_REMINDER": "off",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_FEEDBACK_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    }
    return Plan(_model_flag("--model", model, extra) + extra, env)


def codex(target: Target, extra: list[str]) -> Plan:
    """Codex: a provider of its own for this server (Responses over HTTP), the model and its window."""
    provider = "model_providers.mlxcli"
    overrides = {
        "model_provider": "mlxcli",
        f"{provider}.name": "mlxcli",
        f"{provider}.base_url": f"{target.url}/v1",
        f"{provider}.wire_api": "responses",
        f"{provider}.env_key": KEY_VARIABLE,
        "model_context_window": target.context_window,
    }
    args = [arg for key, value in overrides.items() for arg in ("-c", f"{key}={json.dumps(value)}")]
    return Plan(args + _model_flag("-m", target.model, extra) + extra, {KEY_VARIABLE: target.api_key})


def opencode(target: Target, extra: list[str]) -> Plan:
    """OpenCode: a provider for this server in its inline config (``OPENCODE_CONFIG_CONTENT``), the model the
    default, with its window."""
    model = target.model
    limit = {"context": target.context_window, "output": min(32000, target.context_window // 4)}  # room kept for the answer
    config = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "mlxcli": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "mlxcli",
                "options": {"baseURL": f"{target.url}/v1", "apiKey": target.api_key},
                "models": {model: {"name": model, "limit": limit}},
            }
        },
        "model": f"mlxcli/{model}",
    }
    return Plan(extra, {"OPENCODE_CONFIG_CONTENT": json.dumps(config)})


@dataclass(frozen=True)
class Agent:
    name: str
    program: str  # its executable, looked up on PATH
    install: str
    plan: Callable[[Target, list[str]], Plan]


AGENTS = {
    "claude": Agent("Claude Code", "claude", "npm install -g @anthropic-ai/claude-code", claude),
    "codex": Agent("Codex", "codex", "npm install -g @openai/codex", codex),
    "opencode": Agent("OpenCode", "opencode", "npm install -g opencode-ai", opencode),
}


def _model_flag(flag: str, model: str, extra: list[str]) -> list[str]:
    """``flag model``, unless the user's own arguments choose a model."""
    chosen = any(a == flag or a.startswith(flag + "=") or a == "--model" or a.startswith("--model=") for a in extra)
    return [] if chosen else [flag, model]
