"""Server settings: one object built by `mlxcli serve` and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 16
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    max_body_bytes: int = 4 * 1024 * 1024
    keepalive_seconds: float = 10.0
    # Store requests of stateless APIs (Chat Completions, Anthropic) that do not say `store`.
    store_chat: bool = False
