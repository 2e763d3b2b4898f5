"""mlxcli: serve local MLX language models behind the APIs people already use."""

__version__ = "0.1.0"
