"""Server settings: one object built by `mlxcli serve` and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlxcli.server.images import FetchPolicy

# Browsers may call the API from pages served by this machine only (any port): a web page on the
# internet cannot make a local server do work or read its answers. `--cors-origins` widens it.
LOOPBACK_ORIGINS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
)
# Worker threads kept free of generation work, so /health, refusals and errors answer at once.
RESERVED_THREADS = 8


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    # HTTP worker threads; None: the requests the engine accepts at once (its capacity: max-batch +
    # max-queue, all of which may be streaming) + RESERVED_THREADS.
    threads: int | None = None
    cors_origins: list[str] = field(default_factory=lambda: list(LOOPBACK_ORIGINS))
    allowed_hosts: list[str] = field(default_factory=list)  # extra Host names; "*" turns the check off
    api_keys: list[str] = field(default_factory=list)  # empty: no authentication
    max_body_bytes: int = 4 * 1024 * 1024
    max_upload_bytes: int = 25 * 1024 * 1024  # a multipart upload (audio files: OpenAI's own limit)
    max_audio_seconds: float = 1800.0  # audio decoded for one transcription at most
    max_header_bytes: int = 64 * 1024
    keepalive_seconds: float = 10.0  # SSE comment while nothing else is written
    # Store requests of stateless APIs (Chat Completions, Anthropic) that do not say `store`.
    store_chat: bool = False
    allow_delete: bool = False  # let clients delete installed models over HTTP (never the ones served)
    shutdown_timeout: float = 10.0  # in-flight requests get this long to finish on SIGINT/SIGTERM
    ui: bool = True  # the web chat page at /ui
    metrics_auth: bool = True  # /metrics needs the API key (when keys are set), like the API
    image_fetch: FetchPolicy = field(default_factory=FetchPolicy)  # http(s) image URLs: off unless --allow-image-urls

    def worker_threads(self, in_flight: int) -> int:
        """The threads for ``in_flight`` generation requests at once (see ``middleware.Admission``)."""
        return self.threads or in_flight + RESERVED_THREADS

    def check(self, in_flight: int) -> None:
        """Refuse settings under which waitress could queue requests out of our sight."""
        if self.worker_threads(in_flight) < in_flight + 2:
            raise ValueError(
                f"threads ({self.worker_threads(in_flight)}) must exceed the requests allowed in flight "
                f"({in_flight}, max-batch + max-queue) by at least 2, so that /health and overload "
                "replies always find a free thread"
            )
