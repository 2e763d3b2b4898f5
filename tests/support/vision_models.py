"""A tiny random-weight Qwen2-VL (about 3M parameters), built offline from mlx-vlm's model classes.

Its tokenizer is the default model's with Qwen2-VL's vision tokens added, its chat template a
ChatML one that writes each image part as ``<|vision_start|><|image_pad|><|vision_end|>``, and its
image processor config Qwen2-VL's (14-pixel patches, merged 2x2). Greedy output depends on the pixels:
two different images give different answers, the same image the same one.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
    "min_pixels": 56 * 56,
    "max_pixels": 448 * 448,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_resize": True,
    "do_normalize": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_convert_rgb": True,
}


VISION_CONFIGS = {  # per architecture: Qwen2.5-VL's tower adds window attention and a projection size
    "qwen2_vl": {"mlp_ratio": 2, "embed_dim": 32},
    "qwen2_5_vl": {"intermediate_size": 64, "out_hidden_size": 64, "window_size": 56, "fullatt_block_indexes": [1]},
}


def make_tiny_vlm_dir(tokenizer_dir: Path, dst: Path, *, seed: int = 0, model_type: str = "qwen2_vl") -> Path:
    """``model_type``: "qwen2_vl" or "qwen2_5_vl" (the same processor and multimodal RoPE, another tower)."""
    import importlib

    from transformers import AutoTokenizer

    family = importlib.import_module(f"mlx_vlm.models.{model_type}")

    dst.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(dst)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    config = {
        "model_type": model_type,
        "architectures": ["Qwen2VLForConditionalGeneration" if model_type == "qwen2_vl" else "Qwen2_5_VLForConditionalGeneration"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 4096,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "bos_token_id": None,
        "vision_config": {
            "model_type": model_type, "depth": 2, "hidden_size": 64 if model_type == "qwen2_vl" else 32, "num_heads": 2,
            "patch_size": 14, "spatial_patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3,
            **VISION_CONFIGS[model_type],
        },
    }
    (dst / "config.json").write_text(json.dumps(config))
    processor = "Qwen2VLProcessor" if model_type == "qwen2_vl" else "Qwen2_5_VLProcessor"
    (dst / "preprocessor_config.json").write_text(json.dumps({**PREPROCESSOR, "processor_class": processor}))
    model_config = family.ModelConfig.from_dict(dict(config))
    model_config.vision_config = family.VisionConfig.from_dict(config["vision_config"])
    model_config.text_config = family.TextConfig.from_dict(config)
    mx.random.seed(seed)
    model = family.Model(model_config)
    mx.eval(model.parameters())
    mx.save_safetensors(str(dst / "model.safetensors"), dict(tree_flatten(model.parameters())))
    return dst


def noise_png(seed: int, size: int = 112) -> bytes:
    """A PNG of random pixels: images with different seeds differ everywhere."""
    import io

    from PIL import Image

    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


LLAVA_TEMPLATE = TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>\n")
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def make_tiny_llava_dir(tokenizer_dir: Path, dst: Path, *, seed: int = 0) -> Path:
    """A tiny random LLaVA (a CLIP vision tower, a projector, a llama): images of 56 pixels square, 4x4
    patches of 14, so 16 image tokens each (the CLS row dropped), placed by plain RoPE (no image
    positions in the model)."""
    from mlx_vlm.models import llava
    from transformers import AutoTokenizer

    dst.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.chat_template = LLAVA_TEMPLATE
    tokenizer.save_pretrained(dst)
    text = {
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "vocab_size": len(tokenizer), "max_position_embeddings": 4096,
        "rope_theta": 10000.0, "tie_word_embeddings": False,
    }
    vision = {
        "model_type": "clip_vision_model", "num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 2, "image_size": 56, "patch_size": 14, "projection_dim": 32, "layer_norm_eps": 1e-5,
    }
    config = {
        "model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
        "vision_feature_select_strategy": "default", "vision_feature_layer": -2, "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"), "text_config": text, "vision_config": vision,
    }
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor", "size": {"shortest_edge": 56},
        "crop_size": {"height": 56, "width": 56}, "do_center_crop": True, "do_resize": True, "resample": 3, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
    }))
    (dst / "processor_config.json").write_text(json.dumps({
        "processor_class": "LlavaProcessor", "patch_size": 14, "vision_feature_select_strategy": "default", "image_token": "<image>",
        "num_additional_image_tokens": 1,
    }))
    model_config = llava.ModelConfig.from_dict(dict(config))
    model_config.text_config = llava.TextConfig.from_dict(text)
    model_config.vision_config = llava.VisionConfig.from_dict(vision)
    mx.random.seed(seed)
    model = llava.Model(model_config)
    mx.eval(model.parameters())
    mx.save_safetensors(str(dst / "model.safetensors"), dict(tree_flatten(model.parameters())))
    return dst
