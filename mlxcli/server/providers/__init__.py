"""The wire formats the server speaks, one module each. A new one is a module and a line here."""

from __future__ import annotations

from mlxcli.server.providers import anthropic, azure, ollama, openai
from mlxcli.server.providers.base import Provider

PROVIDERS: tuple[Provider, ...] = (openai.PROVIDER, anthropic.PROVIDER, azure.PROVIDER, ollama.PROVIDER)


def provider_for_path(path: str) -> Provider:
    """The provider owning ``path``: the longest matching prefix (OpenAI's ``/`` owns the rest)."""
    owners = [(len(prefix), p) for p in PROVIDERS for prefix in p.prefixes if path.startswith(prefix)]
    return max(owners, key=lambda owner: owner[0])[1]
