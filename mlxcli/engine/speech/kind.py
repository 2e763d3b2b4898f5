"""``SPEECH``: speech-to-text models (Whisper, in mlx-whisper's layout: model.py). They answer
transcription requests only (``Engine.work("transcription", request)``), a piece of a window per pass
of the engine loop (work.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from mlxcli.core.errors import InvalidRequest
from mlxcli.core.transcription import LANGUAGES, TranscriptionRequest
from mlxcli.engine.details import model_details
from mlxcli.engine.kind import Kind, other_names
from mlxcli.engine.served import ServedModel
from mlxcli.engine.speech import mel as melspec
from mlxcli.engine.speech import model as speech
from mlxcli.engine.speech.work import TranscribeJob, Transcriber, TranscriptionHandle

if TYPE_CHECKING:
    from mlxcli.engine.loading import ModelDir
    from mlxcli.engine.registry import ModelRegistry
    from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.engine")


class SpeechKind(Kind):
    name = "speech"
    task = "transcription"
    locked_prepare = False  # its tokenizer is its own (locked inside), and the log-mel takes a while

    def detect(self, directory: "ModelDir") -> bool:
        return speech.detect(directory.config)

    def serve(self, directory: "ModelDir", name: str, spec: "ModelSpec", settings: "EngineSettings", ids: Sequence[str]) -> ServedModel:
        path, config = directory.path, directory.config
        dims, tokenizer = speech.setup(path, config)
        log.info("%s: speech to text (Whisper, %s)", name, "multilingual" if dims.multilingual else "English only")
        return ServedModel(
            name=name,
            tokenizer=tokenizer,
            context_window=dims.n_text_ctx,
            load=lambda: speech.load(name, path, config, dims, tokenizer),
            aliases=tuple(spec.aliases),
            ids=other_names(name, ids),
            spec=spec,
            details=model_details(tokenizer, None, path, config),  # type: ignore[arg-type]
            kind=self.name,
            capabilities=("transcription",) + (("translation",) if dims.multilingual else ()),
            setup=dims,
        )

    def refusal(self, model: ServedModel) -> str:
        return (f"The model `{model.name}` is a {model.task} model: it does not transcribe audio. "
                "Serve a speech-to-text model beside it, e.g. --model whisper-base.")

    def prepare(self, model: ServedModel, request: TranscriptionRequest) -> TranscribeJob:
        dims, tokenizer = model.setup, model.tokenizer
        if request.language is not None:
            if request.language not in LANGUAGES:
                raise InvalidRequest(f"'language' must be an ISO-639-1 code such as 'en' or 'de', not {request.language!r}.",
                                     param="language")
            if dims.multilingual and request.language not in tokenizer.languages:
                raise InvalidRequest(f"The model `{model.name}` does not know the language {request.language!r}.", param="language")
            if not dims.multilingual and request.language != "en":
                raise InvalidRequest(f"The model `{model.name}` is English-only: it transcribes English ('en'), "
                                     f"not {request.language!r}. Serve a multilingual model, e.g. whisper-base.", param="language")
        prompt = tokenizer.encode(" " + request.prompt.strip()) if request.prompt and request.prompt.strip() else []
        mel = melspec.log_mel(request.audio, dims.n_mels)
        return TranscribeJob(request=request, model=model, mel=mel, frames=len(request.audio) // melspec.HOP, prompt=prompt)

    def handle(self, job: TranscribeJob, alive, cancel) -> TranscriptionHandle:
        return TranscriptionHandle(job, alive, cancel)

    def worker(self, registry: "ModelRegistry") -> Transcriber:
        return Transcriber(registry)


SPEECH = SpeechKind()
