"""The command tree itself: help, version, and import hygiene."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from mlxcli import __version__
from mlxcli.cli import app


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "pull", "bench"):
        assert command in result.output


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_cli_does_not_import_mlx_before_platform_setup():
    # The CPU fast path must load OpenBLAS before mlx.core is imported.
    code = "import sys, mlxcli.cli; print('mlx.core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
