"""A fake Hugging Face Hub on loopback, for ``snapshot_download`` / ``hf_hub_download``.

It implements what ``huggingface_hub`` (0.30 … 2.x) calls to fetch a model snapshot:

- ``GET /api/models/{repo}[/revision/{rev}]`` → repo info (``sha``, ``siblings``);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=…`` → file listing (newer clients);
- ``HEAD|GET /{repo}/resolve/{rev}/{file}`` → the file, with ``X-Repo-Commit``, ``ETag``
  (``X-Linked-Etag``/``X-Linked-Size`` for LFS files) and ``Content-Length``;

and answers unknown repos/revisions/files with the ``X-Error-Code`` headers the client maps to
its ``RepositoryNotFoundError`` / ``RevisionNotFoundError`` / ``EntryNotFoundError``.
Files listed in ``broken`` are cut off half-way, to test interrupted downloads.

Usage::

    with FakeHub() as hub:
        hub.add_repo("org/model", {"config.json": b"{}", ...})   # or a directory Path
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        ...
        assert hub.requests  # [(method, path), ...]
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pth", ".pt", ".model")


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    sha: str = ""

    def __post_init__(self) -> None:
        if not self.sha:
            digest = hashlib.sha1(self.repo_id.encode())
            for name in sorted(self.files):
                digest.update(name.encode() + b"\0" + self.files[name])
            self.sha = digest.hexdigest()

    @staticmethod
    def is_lfs(name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def git_oid(self, name: str) -> str:
        data = self.files[name]
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def etag(self, name: str) -> str:
        if self.is_lfs(name):
            return hashlib.sha256(self.files[name]).hexdigest()
        return self.git_oid(name)


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # (repo_id, file) whose downloads stop half-way, then drop the connection
    broken: set[tuple[str, str]] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes] | Path) -> FakeRepo:
        if isinstance(files, Path):
            root = files
            files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        repo = FakeRepo(repo_id, dict(files))
        self.repos[repo_id] = repo
        return repo

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries for tests ----------------------------------------------------------------

    def downloaded_files(self, repo_id: str) -> set[str]:
        """Files whose content was fetched (GET on /resolve/)."""
        prefix = f"/{repo_id}/resolve/"
        return {p[len(prefix):].split("/", 1)[1] for m, p in self.requests if m == "GET" and p.startswith(prefix)}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message, **(headers or {})})

    def _json(self, payload: object) -> None:
        self._send(200, json.dumps(payload).encode())

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        self.fake.requests.append((self.command, unquote(path)))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        try:
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                self._api(parts[2:])
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            else:
                self._error(404, "NotFound", f"no route for {path}")
        except BrokenPipeError:
            pass

    def _repo(self, repo_id: str, revision: str) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if revision not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    # -- endpoints ------------------------------------------------------------------------

    def _api(self, rest: list[str]) -> None:
        repo_id, tail = f"{rest[0]}/{rest[1]}", rest[2:]
        if not tail or tail[0] == "revision":
            revision = tail[1] if len(tail) > 1 else "main"
            if (repo := self._repo(repo_id, revision)) is not None:
                self._json({
                    "id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False,
                    "disabled": False, "gated": False, "tags": [],
                    "siblings": [{"rfilename": name} for name in sorted(repo.files)],
                })
        elif tail[0] == "tree" and len(tail) >= 2:
            if (repo := self._repo(repo_id, tail[1])) is not None:
                prefix = "/".join(tail[2:])
                self._json([self._tree_entry(repo, name) for name in sorted(repo.files)
                            if not prefix or name.startswith(prefix.rstrip("/") + "/")])
        else:
            self._error(404, "NotFound", "unknown api route")

    @staticmethod
    def _tree_entry(repo: FakeRepo, name: str) -> dict[str, object]:
        entry: dict[str, object] = {"type": "file", "path": name, "size": len(repo.files[name]),
                                    "oid": repo.git_oid(name)}
        if repo.is_lfs(name):
            entry["lfs"] = {"oid": repo.etag(name), "size": len(repo.files[name]), "pointerSize": 134}
        return entry

    def _resolve(self, repo_id: str, revision: str, name: str) -> None:
        repo = self._repo(repo_id, revision)
        if repo is None:
            return
        if name not in repo.files:
            self._error(404, "EntryNotFound", f"{name} does not exist", {"X-Repo-Commit": repo.sha})
            return
        data = repo.files[name]
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{repo.git_oid(name)}"', "Accept-Ranges": "bytes"}
        if repo.is_lfs(name):
            headers["X-Linked-Etag"] = f'"{repo.etag(name)}"'
            headers["X-Linked-Size"] = str(len(data))
        status, body = 200, data
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):  # resumed downloads
            start_text, _, end_text = range_header[len("bytes="):].partition("-")
            start = int(start_text or 0)
            end = int(end_text) if end_text else len(data) - 1
            body = data[start : end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
        if self.command == "GET" and (repo_id, name) in self.fake.broken:
            self._send_half(status, body, headers)
            return
        self._send(status, body, headers, content_type="application/octet-stream")

    def _send_half(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
