"""Vision models: detection, the processor, the model inputs of a prompt, and loading (mlx-vlm).

mlx-vlm is the optional ``vision`` extra; it is imported only for a model that needs it, so a text
server never pays for it and a vision model without it fails at start-up with the extra's name.
A model of an architecture language.py knows loads as a ``VisionLanguage`` (batched with text
requests, its prompts cached); any other as mlx-vlm's model, run one request at a time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.tokenizer_utils import TokenizerWrapper

from mlxcli.core.errors import InvalidRequest, ModelError
from mlxcli.core.request import MAX_IMAGES, ChatRequest, ImageInput, Message
from mlxcli.engine import loading, platform
from mlxcli.engine.prompt import RenderedPrompt
from mlxcli.engine.vision.encoder import Encoder
from mlxcli.engine.vision.language import VisionLanguage, family_of, image_token_of
from mlxcli.engine.vision.media import Media, media_of

log = logging.getLogger("mlxcli.engine")

EXTRA = "pip install 'mlxcli[vision]'"


def is_vision(config: dict[str, Any]) -> bool:
    """A config with a vision tower, as mlx-vlm's models have."""
    return isinstance(config.get("vision_config"), dict)


@dataclass(frozen=True)
class Reader:
    """What a vision model's requests are read with (its ``ServedModel.setup``)."""

    processor: Any  # the model's processor: tokenizer and image processor
    image_token: int | None  # the placeholder each image's feature rows go to (config.json)
    merge: int  # patches per side that become one token, for processors that give a patch grid


def processor_of(path: Path, config: dict[str, Any]) -> Reader:
    """The model's processor (tokenizer + image processor): cheap, read when the model is configured."""
    try:
        from mlx_vlm.utils import get_model_and_args, load_image_processor, load_processor
    except ImportError:
        raise ModelError(f"{path} is a vision model: serving it needs mlx-vlm ({EXTRA})") from None
    try:
        get_model_and_args(dict(config))  # imports the model's module, which registers mlx-vlm's own processor class
        processor = load_processor(path, add_detokenizer=False)
        image_processor = load_image_processor(path)
    except Exception as exc:  # transformers raises many types for a broken processor
        raise ModelError(f"cannot load the image processor of {path}: {exc}") from exc
    if image_processor is not None:
        processor.image_processor = image_processor
    merge = getattr(getattr(processor, "image_processor", None), "merge_size", 1)
    return Reader(processor, image_token_of(config), merge if isinstance(merge, int) else 1)


def images_of(request: ChatRequest) -> list[ImageInput]:
    """Every image of the conversation, in order; at most ``MAX_IMAGES``."""
    found = [image for message in request.messages for image in message.images]
    if len(found) > MAX_IMAGES:
        raise InvalidRequest(f"The request has {len(found)} images, more than the limit of {MAX_IMAGES}.", param=found[MAX_IMAGES].param)
    return found


def without_images(request: ChatRequest, model: str) -> ChatRequest:
    """The request for a model that cannot see: an image a tool returned becomes a note saying so (an
    agent's session must go on past a screenshot it read); an image anyone else sent is a 400."""
    for message in request.messages:
        if message.images and message.role != "tool":
            raise InvalidRequest(f"The model `{model}` does not accept images.", param=message.images[0].param)

    def noted(m: Message) -> Message:
        note = f"[{len(m.images)} image(s) not shown: the model `{model}` does not accept images]"
        return replace(m, images=[], content=f"{m.content}\n{note}" if m.content else note)

    return replace(request, messages=[noted(m) if m.images else m for m in request.messages])


def inputs(reader: Reader, rendered: RenderedPrompt, images: list[ImageInput]) -> RenderedPrompt:
    """The prompt with each image's placeholder expanded to its tokens, keyed by the image in the prompt
    cache, and the pixel values beside it (numpy: MLX arrays belong to the engine thread). Runs on the
    caller's thread."""
    if not images:
        return rendered
    try:
        out = _process(reader.processor, rendered.text, [i.image for i in images])
    except Exception as exc:  # the processor refuses what its model cannot take (sizes, counts)
        raise InvalidRequest(f"the model's image processor cannot read these images: {exc}", param=images[0].param) from exc
    tokens = [int(t) for t in out["input_ids"][0]]
    # numpy, whatever the processor gave (mlx-vlm's own processors give MLX arrays)
    arrays = {k: np.asarray(v) for k, v in out.items() if k not in ("input_ids", "attention_mask") and v is not None}
    try:
        media = media_of(tokens, images, arrays, reader.image_token, reader.merge) if reader.image_token is not None else Media(arrays, None)
    except ValueError as exc:  # a processor whose placeholders this cannot match to its images: mlx-vlm reads them
        log.debug("images not told apart: %s", exc)
        media = Media(arrays, None)
    opaque = [(p.start, p.end, p.identity) for p in media.pictures or []]
    return RenderedPrompt(text=rendered.text, tokens=tokens, plan=rendered.plan, media=media, opaque=opaque)


def _process(processor: Any, text: str, images: list) -> Any:
    try:
        return processor(text=[text], images=images, padding=False, add_special_tokens=False, return_tensors="np")
    except TypeError:  # a processor that hands every keyword to its image processor (mlx-vlm's LLaVA)
        return processor(text=[text], images=images, return_tensors="np")


def load(name: str, path: Path, *, tokenizer: TokenizerWrapper, context_length: int | None, encoder_bytes: int) -> loading.LoadedModel:
    """Weights through mlx-vlm (on the engine thread); float32 on the CPU fast path, as text models. A model
    language.py knows comes as a ``VisionLanguage`` keeping up to ``encoder_bytes`` of image features."""
    start = time.perf_counter()
    try:
        from mlx_vlm.utils import load_model
    except ImportError:
        raise ModelError(f"{name} is a vision model: serving it needs mlx-vlm ({EXTRA})") from None
    try:
        model = load_model(path)
    except Exception as exc:  # mlx-vlm raises many types for a broken directory
        raise ModelError(f"cannot load model {name!r} from {path}: {exc}") from exc
    config = loading.read_config(path)
    dtype = loading.describe_dtype(model, config)
    if mx.default_device().type == mx.cpu and platform.current().fast_path:
        model = loading.to_float32(model)
        dtype = f"float32 (from {dtype})" if not dtype.startswith("float32") else dtype
    mx.eval(model.parameters())
    weight_bytes = sum(v.nbytes for _, v in nn.utils.tree_flatten(model.parameters()))
    family, image_token = family_of(config), image_token_of(config)
    if family is not None and image_token is not None:
        model = VisionLanguage(model, family, Encoder(model, image_token, encoder_bytes))
        how = "batched with text requests; its prompts cached, keyed by their images"
    else:  # its positions live in the model between steps, or its image features are not one row per token
        how = f"one request at a time, no prompt cache (mlxcli does not batch mlx-vlm's {config.get('model_type')!r} yet)"
    loaded = loading.LoadedModel(
        name=name,
        path=path,
        model=model,
        tokenizer=tokenizer,
        config=config,
        context_window=loading.context_window_of(config, context_length),
        dtype=dtype,
        load_seconds=time.perf_counter() - start,
        weight_bytes=weight_bytes,
    )
    log.info("loaded %s (vision) from %s in %.1fs: %s, context %d; %s", name, path, loaded.load_seconds, dtype, loaded.context_window, how)
    return loaded
