"""``TEXT``: any model directory mlx-lm can load (the kind tried last).

Its served model reads the tokenizer and the chat template (``--chat-template`` replaces the model's,
checked now rather than on the first request), detects the reasoning and tool-call format, and loads
the weights through mlx-lm (sharded under ``--distributed``). Its jobs run in the continuous batch, or
alone where the KV cache cannot merge (``--kv-bits``, caches without ``merge``).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import ModelError
from mlxcli.engine import formats, loading, prompt
from mlxcli.engine.batch import Batch, can_batch
from mlxcli.engine.details import model_details
from mlxcli.engine.kind import Kind, other_names, window_limit
from mlxcli.engine.served import ServedModel
from mlxcli.engine.settings import Speculation
from mlxcli.engine.solo import Solo
from mlxcli.engine.speculation import setup as speculation_setup
from mlxcli.engine.vision.model import images_of, without_images

if TYPE_CHECKING:
    import mlx.core as mx

    from mlxcli.core.request import ChatRequest
    from mlxcli.engine.loading import LoadedModel, ModelDir
    from mlxcli.engine.prompt_cache import PromptCache
    from mlxcli.engine.runner import Runner
    from mlxcli.engine.settings import EngineSettings, ModelSpec

log = logging.getLogger("mlxcli.engine")


class TextKind(Kind):
    name = "text"

    def detect(self, directory: "ModelDir") -> bool:
        return True

    def serve(self, directory: "ModelDir", name: str, spec: "ModelSpec", settings: "EngineSettings", ids: Sequence[str]) -> ServedModel:
        path, config, limit = directory.path, directory.config, window_limit(spec, settings)
        tokenizer = self.tokenizer(directory, spec, settings)
        fmt = formats.detect(
            tokenizer,
            spec.tool_call_parser or settings.tool_call_parser,
            spec.reasoning_parser or settings.reasoning_parser,
            model_type=config.get("model_type"),
        )
        log.info("%s: %s%s", name, formats.describe(fmt), "; takes images" if self.name == "vision" else "")
        return ServedModel(
            name=name,
            tokenizer=tokenizer,
            context_window=loading.context_window_of(config, limit),
            load=speculation_setup.speculating(self.loader(directory, name, tokenizer, limit, settings), self.speculation(spec, settings, name), settings),
            aliases=tuple(spec.aliases),
            ids=other_names(name, ids),
            spec=spec,
            format=fmt,
            details=model_details(tokenizer, fmt, path, config),
            identity=loading.fingerprint(path, tokenizer.chat_template),
            kind=self.name,
            capabilities=self.capabilities,
            setup=self.setup(directory),
        )

    capabilities: tuple[str, ...] = ("chat",)

    def speculation(self, spec: "ModelSpec", settings: "EngineSettings", name: str) -> Speculation | None:
        """What its model speculates with (--speculative, --draft-model, or its spec's)."""
        return speculation_setup.wanted(spec, settings)

    def setup(self, directory: "ModelDir"):
        """What requests are read with besides the tokenizer (a vision model's image processor)."""
        return None

    def tokenizer(self, directory: "ModelDir", spec: "ModelSpec", settings: "EngineSettings") -> TokenizerWrapper:
        template_file = spec.chat_template or settings.chat_template
        template = read_chat_template(template_file) if template_file else None
        tokenizer = loading.tokenizer_of(directory.path, directory.config, template)
        if template is not None:
            _check_template(tokenizer, template_file)
        return tokenizer

    def loader(self, directory: "ModelDir", name: str, tokenizer: TokenizerWrapper, limit: int | None, settings: "EngineSettings"):
        return partial(loading.load, name, directory.path, context_length=limit, tokenizer=tokenizer, shard=settings.distributed)

    def render(self, model: ServedModel, request: "ChatRequest", boundaries: bool) -> prompt.RenderedPrompt:
        if images_of(request):  # images a tool returned become a note; anyone else's are refused
            request = without_images(request, model.name)
        return prompt.render(model.tokenizer, request, model.format, boundaries=boundaries and model.checkpoints is not False)

    def runner(self, model: ServedModel, loaded: "LoadedModel", settings: "EngineSettings", prompt_cache: "PromptCache", stream: "mx.Stream") -> "Runner":
        batches = settings.kv_bits is None and can_batch(loaded)  # quantized KV caches cannot merge
        return (Batch if batches else Solo)(model, loaded, settings, prompt_cache, stream)


TEXT = TextKind()


def _check_template(tokenizer: TokenizerWrapper, file: str) -> None:
    """Fail at start-up, not on the first request, when a custom template cannot render."""
    probe = [{"role": "user", "content": "Hello"}]
    try:
        tokenizer.apply_chat_template(probe, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja's TemplateSyntaxError, UndefinedError, ...
        raise ModelError(f"the chat template {file} cannot render a simple conversation: {exc}") from exc


def read_chat_template(file: str) -> str:
    path = Path(file).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the chat template {path}: {exc}") from exc
    if not text.strip():
        raise ModelError(f"the chat template {path} is empty")
    return text
