"""GGUF → MLX conversion for llama-architecture models (header, llama layout, tokenizer, pipeline).

Imported lazily by the code that converts: it needs numpy, and MLX once converting starts.
"""

from mlxcli.models.gguf.convert import convert_gguf
from mlxcli.models.gguf.header import read_gguf_header

__all__ = ["convert_gguf", "read_gguf_header"]
