"""``mlxcli install imagegen``: the optional parts pip cannot resolve as an extra.

mflux (image generation) declares ``mlx[cuda13]==0.32.2`` and torch on Linux, and torch on macOS: beside
``mlx[cpu]`` pip cannot resolve it, and torch is only needed for ``.pth`` weights. So mflux is installed
without its declared dependencies, after what it really imports (mlxcli's ``imagegen`` extra, read from
mlxcli's own metadata), into the Python that runs mlxcli. The same command works on macOS and Linux.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from typing import Annotated

import typer

from mlxcli.cli import app
from mlxcli.cli.common import fail

MFLUX_SERIES = "0.24"  # engine/imagegen drives mflux's loaders and its denoising loop: one minor series
MFLUX = f"mflux=={MFLUX_SERIES}.*"
PARTS = {"imagegen": "image generation with mflux (Z-Image, FLUX.1, FLUX.1 Kontext, Qwen-Image)"}


def extra_requirements(extra: str) -> list[str]:
    """The requirements of mlxcli's ``extra``, as its installed metadata lists them."""
    marker = f'extra == "{extra}"'
    found = []
    for line in metadata.requires("mlxcli") or []:
        requirement, _, condition = line.partition(";")
        if marker in condition.replace("'", '"'):
            rest = condition.replace("'", '"').replace(marker, "").strip().removeprefix("and").removesuffix("and").strip()
            found.append(requirement.strip() + (f"; {rest}" if rest else ""))
    return found


def version(requirement: str) -> str | None:
    """The installed version of the distribution a requirement names, if any."""
    try:
        return metadata.version(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
    except metadata.PackageNotFoundError:
        return None


@app.command("install")
def install(
    part: Annotated[str, typer.Argument(help=f"What to install: {', '.join(PARTS)}.")],
    force: Annotated[bool, typer.Option("--force", help="Install again even if it is there.")] = False,
) -> None:
    """Install an optional part of mlxcli that pip cannot resolve as an extra (imagegen: mflux)."""
    if part not in PARTS:
        fail(f"unknown part {part!r}: one of {', '.join(PARTS)}")
    requirements = extra_requirements(part)
    mflux = version("mflux") or ""
    if not force and mflux.startswith(MFLUX_SERIES + ".") and all(version(r) for r in requirements):
        typer.echo(f"{part}: already installed ({PARTS[part]})")
        return
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    steps = [pip + requirements, pip + ["--no-deps", MFLUX]]  # mflux's own pins never reach the resolver
    for step in steps:
        typer.echo("$ " + " ".join(step[2:]), err=True)
        if subprocess.run(step).returncode != 0:
            fail(f"installing {part} failed (pip's output is above)")
    typer.echo(f"{part}: installed ({PARTS[part]})")
