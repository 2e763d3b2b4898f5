"""Model names: what kind of name a string is, and refusing anything unsafe before it is used.

Every name goes through ``parse_name`` before it reaches the filesystem or the network, so that
the checks untrusted input relies on (the HTTP server passes ``allow_paths=False``) live in one
place.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from mlxcli.core.errors import InvalidRequest
from mlxcli.models.aliases import ALIASES

MAX_NAME_LENGTH = 96  # an alias, installed name or each half of a repo id (the Hub's own limit)
MAX_PATH_LENGTH = 4096
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PATH_PREFIXES = ("/", "./", "../", "~")


@dataclass(frozen=True)
class ParsedName:
    kind: str  # "alias" | "installed" | "repo" | "path"
    value: str


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="model")


def _check_part(part: str, what: str) -> None:
    if not _PART.fullmatch(part) or ".." in part or "--" in part or part.endswith((".", "-")):
        raise _bad(f"invalid {what} {part!r}: use letters, digits, '.', '_' and '-' "
                   "(not starting or ending with '.' or '-', no '..' or '--')")
    if len(part) > MAX_NAME_LENGTH:
        raise _bad(f"{what} is longer than {MAX_NAME_LENGTH} characters")


def parse_name(name: Any, *, allow_paths: bool) -> ParsedName:
    if not isinstance(name, str):
        raise _bad("model name must be a string")
    if len(name) > MAX_PATH_LENGTH:
        raise _bad("model name is too long")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise _bad("model name contains control characters")
    name = name.strip(" ")  # pasted names often carry spaces; nothing else is trimmed
    if not name:
        raise _bad("model name is empty")
    if name.lower() in ALIASES:
        return ParsedName("alias", name.lower())
    explicit_path = name.startswith(_PATH_PREFIXES) or name in (".", "..")
    if explicit_path or (allow_paths and os.path.lexists(name)):
        if not allow_paths:
            raise _bad("local paths are not accepted here; use an installed model name or a repo id")
        return ParsedName("path", name)
    if "\\" in name or ":" in name:
        raise _bad(f"invalid model name {name!r}")
    parts = name.split("/")
    if len(parts) == 2:
        _check_part(parts[0], "repo owner")
        _check_part(parts[1], "repo name")
        return ParsedName("repo", name)
    if len(parts) == 1:
        _check_part(name, "model name")
        return ParsedName("installed", name)
    raise _bad(f"invalid model name {name!r}: expected an alias, a name, owner/name or a path")


def validate_model_name(name: str, *, allow_paths: bool = True) -> str:
    """Check a model name before it reaches the filesystem or the network; return it cleaned.

    Refused (``InvalidRequest``, ``param="model"``): non-strings, empty names, control or
    invisible formatting characters, over-long names, ``..``/``--`` inside names and repo ids,
    more than one ``/`` outside a path, and — with ``allow_paths=False`` — anything that is or
    looks like a local path (``/x``, ``./x``, ``../x``, ``~``, an existing file).

    Why that is enough for untrusted input (``allow_paths=False``): what remains is an alias, one
    path component ``[A-Za-z0-9][A-Za-z0-9._-]*`` (it can only name an entry directly inside
    ``models_dir()``, never a hidden ``.tmp-``/``.lock-`` entry), or ``owner/name`` of two such
    components (it can only name a folder of the HF cache). With ``allow_paths=True`` (the CLI) a
    name is a path only when written as one (``/``, ``./``, ``../``, ``~``) or when it exists.
    """
    return parse_name(name, allow_paths=allow_paths).value
