"""Where answers come from. Every backend turns a ChatRequest into the neutral events of one answer.

Two implementations: ``EngineBackend`` (the in-process engine, below) and
``HttpBackend`` (a running server, in ``http.py``, over ``mlxcli.client``). Refusals (unknown
model, prompt too long, server unreachable) raise ``MlxcliError`` from ``stream``;
a failure half-way raises it from the iteration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

from mlxcli.core.events import Event, Usage
from mlxcli.core.request import ChatRequest

if TYPE_CHECKING:
    from mlxcli.core.engine import Engine, Generation


MAX_AUDIO_SECONDS = 3600  # what /audio transcribes at most


class Reply(Protocol):
    """One answer being generated."""

    def __iter__(self) -> Iterator[Event]: ...

    def cancel(self) -> Usage:
        """Stop generating (a no-op once it finished); the usage so far, as far as it is known."""
        ...


class Backend(Protocol):
    model: str  # the name of the model that answers, as shown and stored
    where: str  # "in-process" or the server's base URL

    def stream(self, request: ChatRequest) -> Reply: ...

    def image(self, prompt: str, size: tuple[int, int] | None = None) -> bytes:
        """A PNG generated from ``prompt`` by the image model served (``/image-gen``; ``size``: width, height,
        else the model's default); Ctrl-C stops it."""

    def transcribe(self, path: Path) -> str:
        """The words of an audio file (``/audio``); raises MlxcliError."""
        ...

    def close(self) -> None: ...


class EngineBackend:
    """The shared engine, in this process (started by ``start_engine``); a speech model's own engine
    beside it once ``/audio`` needs one (``speech``: its name; pulled then, if need be)."""

    where = "in-process"

    def __init__(self, engine: "Engine", speech: Callable[[], "Engine"] | None = None):
        self.engine = engine
        self.model = engine.default_model
        self._speech = speech
        self._speech_engine: "Engine | None" = None

    def stream(self, request: ChatRequest) -> Reply:
        return _EngineReply(self.engine.submit(request))

    def image(self, prompt: str, size: tuple[int, int] | None = None) -> bytes:
        import io

        from mlxcli.core.images import ImageRequest

        work = self.engine.work("image", ImageRequest(prompt, size=size))
        try:
            while (result := work.result(timeout=0.25)) is None:
                pass
        finally:
            work.cancel()  # after Ctrl-C; a no-op once done
        out = io.BytesIO()
        result.images[0].save(out, format="PNG")
        return out.getvalue()

    def transcribe(self, path: Path) -> str:
        from mlxcli.audio import decode_audio
        from mlxcli.core.errors import InvalidRequest
        from mlxcli.core.transcription import TranscriptionRequest

        audio = decode_audio(path, max_seconds=MAX_AUDIO_SECONDS, param=str(path))
        if self._speech_engine is None:
            if self._speech is None:
                raise InvalidRequest("no speech model: start the chat with --speech-model")
            self._speech_engine = self._speech()
        return self._speech_engine.work("transcription", TranscriptionRequest(audio=audio)).result().text.strip()

    def close(self) -> None:
        self.engine.stop(grace=0)
        if self._speech_engine is not None:
            self._speech_engine.stop(grace=0)


class _EngineReply:
    def __init__(self, generation: "Generation"):
        self._generation = generation

    def __iter__(self) -> Iterator[Event]:
        return iter(self._generation)

    def cancel(self) -> Usage:
        self._generation.cancel()
        return Usage(prompt_tokens=self._generation.prompt_tokens, completion_tokens=self._generation.generated_tokens)
