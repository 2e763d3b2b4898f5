"""A tiny random Z-Image laid out as its Hugging Face repo is (diffusers: model_index.json, one folder per
component with its config.json and safetensors under diffusers' weight names), built offline from mflux's
own module classes.

The transformer and the text encoder are shrunk (their config.json files say so; the loader reads them);
the VAE is the real architecture (about 84M parameters, random weights: mflux builds it at one size);
the tokenizer is the default model's, standing in for Qwen3's. Weights are random but seeded, so a
directory built twice is the same model.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

TRANSFORMER = {
    "_class_name": "ZImageTransformer2DModel",
    "all_patch_size": [2],
    "all_f_patch_size": [1],
    "in_channels": 16,
    "dim": 192,  # its feed-forward is 8/3 wider: 512, and every matrix quantizes in groups of 64
    "n_layers": 1,
    "n_refiner_layers": 1,
    "n_heads": 3,
    "n_kv_heads": 3,
    "norm_eps": 1e-5,
    "qk_norm": True,
    "cap_feat_dim": 64,
    "rope_theta": 256.0,
    "t_scale": 1000.0,
    "axes_dims": [16, 24, 24],  # the rotary axes share a head's 64 dimensions
    "axes_lens": [1024, 512, 512],
}
TEXT_ENCODER = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 128,
    "head_dim": 32,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
}
VAE = {"_class_name": "AutoencoderKL", "latent_channels": 16, "scaling_factor": 0.3611, "shift_factor": 0.1159}
SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
PIPELINE = {
    "_class_name": "ZImagePipeline",
    "_diffusers_version": "0.36.0",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "Qwen3Model"],
    "tokenizer": ["transformers", "Qwen2Tokenizer"],
    "transformer": ["diffusers", "ZImageTransformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_tiny_zimage_dir(tokenizer_dir: Path, dst: Path, *, seed: int = 0) -> Path:
    """A random Z-Image-Turbo of about 90M parameters (mostly its VAE) in ``dst``."""
    from mflux.models.z_image.model.z_image_text_encoder.text_encoder import TextEncoder
    from mflux.models.z_image.model.z_image_transformer.transformer import ZImageTransformer
    from mflux.models.z_image.model.z_image_vae.vae import VAE as ZImageVAE
    from mflux.models.z_image.weights.z_image_weight_mapping import ZImageWeightMapping

    dst.mkdir(parents=True, exist_ok=True)
    vocab = json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"]
    text_config = {**TEXT_ENCODER, "vocab_size": len(vocab)}
    mx.random.seed(seed)
    sizes = {k: v for k, v in TRANSFORMER.items() if k in ("dim", "n_layers", "n_refiner_layers", "n_heads", "cap_feat_dim", "axes_dims")}
    components = {
        "transformer": (ZImageTransformer(**sizes), ZImageWeightMapping.get_transformer_mapping(), TRANSFORMER),
        "text_encoder": (TextEncoder(**{k: v for k, v in text_config.items() if k not in ("architectures", "model_type")}),
                         ZImageWeightMapping.get_text_encoder_mapping(), text_config),
        "vae": (ZImageVAE(), ZImageWeightMapping.get_vae_mapping(), VAE),
    }
    for name, (module, mapping, config) in components.items():
        folder = dst / name
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        # Parameters no mapping writes are computed, not loaded (rotary frequencies).
        weights = {hf_name(key, mapping): to_hf(key, value, mapping)
                   for key, value in tree_flatten(module.parameters()) if _maps(key, mapping)}
        mx.save_safetensors(str(folder / "diffusion_pytorch_model.safetensors"), {k: v.astype(mx.bfloat16) for k, v in weights.items()})
    (dst / "tokenizer").mkdir(exist_ok=True)
    for file in TOKENIZER_FILES:
        if (tokenizer_dir / file).is_file():
            shutil.copy(tokenizer_dir / file, dst / "tokenizer" / file)
    (dst / "scheduler").mkdir(exist_ok=True)
    (dst / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER))
    (dst / "model_index.json").write_text(json.dumps(PIPELINE, indent=1))
    return dst


def _target(key: str, mapping) -> tuple[object, dict[str, str]]:
    """The mapping entry that writes mflux's parameter ``key``, and the values of its placeholders."""
    for target in mapping:
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>\\d+)", re.escape(target.to_pattern)) + "$"
        found = re.match(pattern, key)
        if found:
            return target, found.groupdict()
    raise KeyError(f"no weight mapping writes {key}")


def _maps(key: str, mapping) -> bool:
    try:
        _target(key, mapping)
    except KeyError:
        return False
    return True


def hf_name(key: str, mapping) -> str:
    """The diffusers name of mflux's parameter ``key`` (the mapping read backwards)."""
    target, values = _target(key, mapping)
    return target.from_pattern[0].format(**values)


def to_hf(key: str, value: mx.array, mapping) -> mx.array:
    """The tensor as diffusers stores it: convolution weights back to (out, in, h, w)."""
    target, _ = _target(key, mapping)
    if target.transform is not None and value.ndim == 4:
        return value.transpose(0, 3, 1, 2)
    return value
