"""Sizes on the command line (`--prompt-cache-bytes`, `--store-max-bytes`): units as the help shows them."""

from __future__ import annotations

import re

import pytest
import typer
import yaml
from typer.testing import CliRunner

from mlxcli.cli import app
from mlxcli.cli.store_options import parse_size


@pytest.mark.parametrize(
    "text, size",
    [
        ("0", 0), ("1000", 1000), ("10B", 10), ("10 b", 10),
        ("64k", 64_000), ("64kB", 64_000), ("64KB", 64_000), ("64K", 64_000),
        ("500M", 500_000_000), ("500MB", 500_000_000), ("1.5G", 1_500_000_000), ("2GB", 2_000_000_000), ("1TB", 10**12),
        ("64KiB", 64 << 10), ("500MiB", 500 << 20), ("2GiB", 2 << 30), ("1.5GiB", 3 << 29), ("1TiB", 1 << 40),
        (" 2 GiB ", 2 << 30), ("2gib", 2 << 30),
    ],
)
def test_decimal_and_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "10X", "10Gi", "-1", "1e3", "GiB", "10 B B", "1,000", "0x10"])
def test_anything_else_is_a_bad_parameter(text):
    with pytest.raises(typer.BadParameter, match="is not a size"):
        parse_size(text)


def serve(*args: str):
    return CliRunner().invoke(app, ["serve", *args, "--print-config"])


@pytest.mark.parametrize("option", ["--prompt-cache-bytes", "--store-max-bytes"])
def test_the_serve_options(option):
    key = option.removeprefix("--").replace("-", "_")
    for given, size in (("10B", 10), ("500MB", 500_000_000), ("4GiB", 4 << 30)):
        result = serve(option, given)
        assert result.exit_code == 0, result.output
        assert int(yaml.safe_load(result.output)["server"][key]) == size
    result = serve(option, "lots")
    message = " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())  # unwrap the error box
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in message and "'lots' is not a size" in message
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback


def test_the_help_says_which_units_are_which():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "300"})
    text = " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())
    assert "500MB = 500 x 10^6 bytes" in text and "2GiB = 2 x 2^30" in text
