"""The `mlxcli serve --config FILE` file: models to serve and server settings, in YAML or TOML.

Both formats have the same keys::

    models:
      - model: smollm2-135m          # anything `mlxcli pull` accepts
        served_name: small
        aliases: [tiny, default]
        temperature: 0.7             # this model's sampling defaults; requests override them
        context_length: 4096
        context_overflow: truncate   # error | truncate | summarize (see `mlxcli serve --context-overflow`)
        chat_template: ./chatml.jinja
        speculative: ngram           # prompt lookup (see `mlxcli serve --speculative`); off: none for this model
        draft_model: ./small-draft   # a draft model of the same tokenizer (see `mlxcli serve --draft-model`)
    server:                          # any `mlxcli serve` flag, by its long name
      port: 8000
      max_loaded_models: 2

Relative paths (a ``model`` or ``draft_model`` written ``./x`` or ``../x``, ``chat_template``) are relative
to the file. This module only reads and checks the file; `mlxcli serve` decides what the
``server`` keys mean (flags given on the command line win over them).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from mlxcli.core.request import SAMPLING_BOUNDS, Sampling
from mlxcli.engine.settings import POLICIES, SPECULATIVE, ModelSpec

# Sampling defaults a model may set, with the bounds every API accepts.
SAMPLING_KEYS = SAMPLING_BOUNDS
TEXT_KEYS = ("model", "served_name", "chat_template", "tool_call_parser", "reasoning_parser", "context_overflow", "image_preset",
             "speculative", "draft_model")
MODEL_KEYS = (*TEXT_KEYS, "aliases", "context_length", "context_keep_turns", "quantize", *SAMPLING_KEYS)
QUANTIZE_BITS = (3, 4, 5, 6, 8)  # an image model's weights at load (mflux)
PATH_KEYS = ("chat_template", "prompt_cache_dir")  # server settings holding a path ("none" stays none)
MIN_CONTEXT = 16


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass
class ServeConfig:
    models: list[ModelSpec] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)  # `mlxcli serve` flag name → value


def load_config(path: str | Path) -> ServeConfig:
    """Read a YAML (.yaml, .yml) or TOML (.toml) config file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not valid {'TOML' if path.suffix.lower() == '.toml' else 'YAML'}: {exc}") from exc
    return parse_config(data, base_dir=path.resolve().parent, source=str(path))


def parse_config(data: Any, *, base_dir: Path, source: str = "config") -> ServeConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'models' and 'server'")
    _no_unknown(data, ("models", "server"), source)
    models = data.get("models") or []
    if not isinstance(models, list):
        raise ConfigError(f"{source}: 'models' must be a list of models")
    server = data.get("server") or {}
    if not isinstance(server, dict):
        raise ConfigError(f"{source}: 'server' must be a mapping of settings")
    return ServeConfig(
        models=[_model(entry, f"{source}: models[{i}]", base_dir) for i, entry in enumerate(models)],
        server={_flag_name(k, source): _server_value(k, v, base_dir) for k, v in server.items() if v is not None},
    )


def dump_config(config: ServeConfig) -> str:
    """The config as YAML that ``load_config`` reads back to an equal ``ServeConfig``."""
    data = {"models": [spec_to_dict(s) for s in config.models], "server": dict(config.server)}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"model": spec.model}
    if spec.served_name is not None:
        out["served_name"] = spec.served_name
    if spec.aliases:
        out["aliases"] = list(spec.aliases)
    out.update({k: getattr(spec.sampling, k) for k in SAMPLING_KEYS if getattr(spec.sampling, k) is not None})
    for key in ("context_length", "chat_template", "tool_call_parser", "reasoning_parser", "context_overflow", "context_keep_turns",
                "quantize", "image_preset", "speculative", "draft_model"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    return out


# ---- checking ------------------------------------------------------------------


def _model(entry: Any, where: str, base_dir: Path) -> ModelSpec:
    if isinstance(entry, str):  # "- smollm2-135m" is short for "- model: smollm2-135m"
        entry = {"model": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with at least 'model'")
    _no_unknown(entry, MODEL_KEYS, where)
    text = {k: _text(entry[k], f"{where}.{k}") for k in TEXT_KEYS if entry.get(k) is not None}
    if "model" not in text:
        raise ConfigError(f"{where}: 'model' is required (an alias, Hugging Face repo id, directory or .gguf file)")
    sampling = Sampling(**{k: _number(entry[k], f"{where}.{k}", *SAMPLING_KEYS[k]) for k in SAMPLING_KEYS if entry.get(k) is not None})
    context_length = entry.get("context_length")
    keep_turns = entry.get("context_keep_turns")
    quantize = entry.get("quantize")
    if quantize is not None and (not isinstance(quantize, int) or isinstance(quantize, bool) or quantize not in QUANTIZE_BITS):
        raise ConfigError(f"{where}.quantize: must be one of {', '.join(map(str, QUANTIZE_BITS))} (bits), got {quantize!r}")
    if text.get("speculative", "off") not in SPECULATIVE:
        raise ConfigError(f"{where}.speculative: must be one of {', '.join(SPECULATIVE)}, got {text['speculative']!r}")
    if text.get("context_overflow", "error") not in POLICIES:
        raise ConfigError(f"{where}.context_overflow: must be one of {', '.join(POLICIES)}, got {text['context_overflow']!r}")
    return ModelSpec(
        model=_relative_model(text["model"], base_dir),
        served_name=text.get("served_name"),
        aliases=_aliases(entry.get("aliases"), f"{where}.aliases"),
        sampling=sampling,
        context_length=None if context_length is None else int(_number(context_length, f"{where}.context_length", int, MIN_CONTEXT, math.inf)),
        chat_template=_path(text["chat_template"], base_dir) if "chat_template" in text else None,
        tool_call_parser=text.get("tool_call_parser"),
        reasoning_parser=text.get("reasoning_parser"),
        context_overflow=text.get("context_overflow"),
        context_keep_turns=None if keep_turns is None else int(_number(keep_turns, f"{where}.context_keep_turns", int, 1, math.inf)),
        quantize=quantize,
        image_preset=text.get("image_preset"),
        speculative=text.get("speculative"),
        draft_model=_relative_model(text["draft_model"], base_dir) if "draft_model" in text else None,
    )


def _no_unknown(data: dict, known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _number(value: Any, where: str, kind: type, lo: float, hi: float) -> float | int:
    ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise ConfigError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not lo <= value <= hi:
        bounds = f"at least {lo:g}" if hi == math.inf else f"between {lo:g} and {hi:g}"
        raise ConfigError(f"{where}: must be {bounds}, got {value!r}")
    return kind(value)


def _aliases(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list of names")
    return [_text(v, f"{where}[{i}]") for i, v in enumerate(items)]


def _relative_model(model: str, base_dir: Path) -> str:
    return str((base_dir / model).resolve()) if model.startswith(("./", "../")) else model


def _path(value: str, base_dir: Path) -> str:
    return str((base_dir / Path(value).expanduser()).resolve())


def _flag_name(key: Any, source: str) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"{source}: server setting names must be strings, got {key!r}")
    return key.replace("-", "_")


def _server_value(key: str, value: Any, base_dir: Path) -> Any:
    if key.replace("-", "_") in PATH_KEYS and isinstance(value, str) and value.strip().lower() != "none":
        return _path(value, base_dir)
    return value
