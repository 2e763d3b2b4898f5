"""The engine: the only part of mlxcli that imports ``mlx`` / ``mlx_lm``."""
