"""The group of ranks one model is sharded over (``mx.distributed``: ring, JACCL, MPI, NCCL), as
mlx_lm.server does under ``mlx.launch``: joining it, which backend it runs on, splitting a model over it
(mlx-lm's ``shard()`` for tensor parallelism, ``pipeline()`` for pipeline parallelism), and telling a
backend's failure (a rank gone, a link down) from a request's. What the ranks say to each other every
pass of the engine's loop is ``peers.py``.
"""

from __future__ import annotations

import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlxcli.core.errors import ModelError

BACKEND_ERRORS = ("[ring]", "[jaccl]", "[mpi]", "[nccl]")  # how each backend's errors begin

# What mlx.launch sets for each backend (the group itself does not say which one it runs on).
BACKEND_ENV = (("MLX_JACCL_COORDINATOR", "jaccl"), ("MLX_IBV_DEVICES", "jaccl"), ("MLX_HOSTFILE", "ring"),
               ("MLX_MPI_LIBNAME", "mpi"), ("OMPI_COMM_WORLD_SIZE", "mpi"), ("NCCL_HOST_IP", "nccl"))


def collective_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is a distributed backend's failure (a rank gone, a link down), not a request's."""
    return isinstance(exc, RuntimeError) and str(exc).startswith(BACKEND_ERRORS)


def group() -> mx.distributed.Group:
    return mx.distributed.init()


def backend() -> str:
    return next((name for var, name in BACKEND_ENV if var in os.environ), "any")


def check_world(mode: str) -> mx.distributed.Group:
    """The group of ranks to shard over: at least two, or a clear error (not under mlx.launch)."""
    world = group()
    if world.size() < 2:
        raise ModelError(
            f"--distributed {mode} needs several ranks, but this process is alone: start it under mlx.launch "
            "(mlx.launch -n 2 --backend ring -- mlxcli serve ...) or use `mlxcli serve --launch 2`"
        )
    return world


def shard(model: nn.Module, config: dict[str, Any], mode: str) -> None:
    """Split ``model`` over the ranks (``mode``: tensor or pipeline), or raise naming the constraint."""
    world = check_world(mode)
    n, kind = world.size(), config.get("model_type", "?")
    if mode == "tensor":
        if not hasattr(model, "shard"):
            raise ModelError(f"the {kind} architecture has no tensor-parallel shard() in mlx-lm: try --distributed pipeline")
        text = config.get("text_config") or config
        for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
            value = text.get(key)
            if isinstance(value, int) and value % n:
                raise ModelError(f"--distributed tensor over {n} ranks needs {key} divisible by {n}, but this model has {value}: use a world size that divides it")
        model.shard(world)
    else:
        inner = getattr(model, "model", None)
        if not hasattr(inner, "pipeline"):
            raise ModelError(f"the {kind} architecture has no pipeline() in mlx-lm: try --distributed tensor")
        layers = len(inner.layers)
        if layers < n:
            raise ModelError(f"--distributed pipeline over {n} ranks needs at least {n} layers, but this model has {layers}")
        inner.pipeline(world)
