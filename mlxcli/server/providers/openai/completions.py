"""OpenAI's legacy Completions (``POST /v1/completions``): a raw prompt in, its continuation out.

What simonw's ``llm`` with a completion model and editors' autocompletion send. The prompt is
tokenized as it is (no chat template), through the same engine, batching and prompt cache as chat;
``suffix`` asks for fill-in-the-middle, where the model's vocabulary has FIM tokens (prompt.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from mlxcli.core.collect import Completion
from mlxcli.core.errors import InvalidRequest, MlxcliError
from mlxcli.core.events import Event, Finish, TextDelta, TokenLogprob
from mlxcli.core.request import ChatRequest, Sampling, new_id, now
from mlxcli.server.framing import sse_data
from mlxcli.server.providers import common
from mlxcli.server.providers.openai.chat import FINGERPRINT, FINISH_REASONS
from mlxcli.server.providers.openai.errors import error_body
from mlxcli.server.validate import Obj
from mlxcli.store import Turn

SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
MAX_LOGPROBS = 20
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this API


@dataclass
class CompletionsCall:
    request: ChatRequest
    stream: bool
    include_usage: bool
    echo: bool
    id: str
    store: bool | None = False  # nothing to continue: never stored

    def response(self, completion: Completion, model: str) -> dict[str, Any]:
        finish = completion.finish or Finish("stop")
        text = (self.request.prompt or "") + completion.text if self.echo else completion.text
        choice = {"index": 0, "text": text, "logprobs": self._logprobs(completion.logprobs), "finish_reason": FINISH_REASONS[finish.reason]}
        return {**self._head(model), "choices": [choice], "usage": usage_json(finish)}

    def encoder(self, model: str, prompt_tokens: int) -> "CompletionsStreamEncoder":
        return CompletionsStreamEncoder(self, model)

    def turn(self, completion: Completion, model: str) -> Turn | None:
        return None

    def _head(self, model: str) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": now(), "model": model, "system_fingerprint": FINGERPRINT}

    def _logprobs(self, tokens: list[TokenLogprob], offset: int = 0) -> dict[str, Any] | None:
        """Legacy Completions' logprobs: parallel lists, and each token's offset in the text."""
        if self.request.logprobs is None:
            return None
        offsets = []
        for t in tokens:
            offsets.append(offset)
            offset += len(t.token)
        return {
            "tokens": [t.token for t in tokens],
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [dict(t.top) for t in tokens],
            "text_offset": offsets,
        }


def usage_json(finish: Finish) -> dict[str, Any]:
    u = finish.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def parse(body: dict[str, Any]) -> CompletionsCall:
    """Raises InvalidRequest naming the parameter."""
    o = Obj(body)
    model = common.model_name(o)
    prompt = _prompt(o)
    suffix = o.str("suffix")
    stream = o.bool("stream", default=False)
    stream_options = o.obj("stream_options")
    if stream_options is not None and not stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    o.int("n", lo=1, hi=1, default=1)  # one choice per request, as on Chat
    o.int("best_of", lo=1, hi=1, default=1)
    o.unsupported("logit_bias")
    o.str("user", max_len=256)
    seed = o.int("seed", lo=-(2**63), hi=2**64 - 1)
    limit = common.max_tokens(o, "max_tokens")
    sampling = Sampling(
        **common.sampling_fields(o, SAMPLING),
        seed=None if seed is None else seed % 2**64,
        max_tokens=DEFAULT_MAX_TOKENS if limit is None else limit,
        stop=common.stop(o, "stop"),
    )
    request = ChatRequest([], sampling, model, prompt=prompt, suffix=suffix, logprobs=o.int("logprobs", lo=0, hi=MAX_LOGPROBS))
    return CompletionsCall(
        request,
        stream=stream,
        include_usage=bool(stream_options and stream_options.bool("include_usage", default=False)),
        echo=o.bool("echo", default=False),
        id=new_id("cmpl-"),
    )


def _prompt(o: Obj) -> str:
    """A string, or a list holding one string (several prompts: one request each)."""
    value = o.raw("prompt")
    if value is None or isinstance(value, str):
        return o.str("prompt", required=True)
    items = o.list("prompt", required=True, min_items=1)
    if len(items) > 1 or not isinstance(items[0][0], str):
        raise InvalidRequest(
            "'prompt' must be a string or a list of one string: send one request per prompt (token-id prompts are not supported).",
            param="prompt",
        )
    return items[0][0]


class CompletionsStreamEncoder:
    """``text_completion`` chunks (the prompt first, with ``echo``), a finish chunk, optional usage, ``[DONE]``."""

    def __init__(self, call: CompletionsCall, model: str):
        self.call = call
        self.model = model
        self.head = call._head(model)
        self.pending: list[TokenLogprob] = []  # logprobs of tokens whose text has not been sent yet
        self.offset = 0

    def _chunk(self, text: str, finish_reason: str | None = None) -> bytes:
        logprobs = self.call._logprobs(self.pending, self.offset)
        self.pending, self.offset = [], self.offset + len(text)
        chunk = {**self.head, "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}]}
        return sse_data(chunk)

    def start(self) -> Iterable[bytes]:
        if self.call.echo and self.call.request.prompt:
            yield self._chunk(self.call.request.prompt)

    def event(self, event: Event) -> Iterable[bytes]:
        if isinstance(event, TokenLogprob):
            self.pending.append(event)
        elif isinstance(event, TextDelta):
            yield self._chunk(event.text)
        elif isinstance(event, Finish):
            yield self._chunk("", FINISH_REASONS[event.reason])
            if self.call.include_usage:
                yield sse_data({**self.head, "choices": [], "usage": usage_json(event)})
            yield b"data: [DONE]\n\n"

    def error(self, err: MlxcliError) -> Iterable[bytes]:
        yield sse_data(error_body(err))
