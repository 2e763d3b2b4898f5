"""The web chat page at ``/ui``: static files shipped in the package, served under a strict CSP.

The page (static/) talks to this server's own Chat Completions API, streaming, and keeps its
conversations in the browser. It needs no build step and loads nothing from elsewhere: no CDN,
no inline script or style, so the Content-Security-Policy can forbid everything else (model
output is untrusted text; the page builds its DOM from it as text nodes, and the CSP is the
second wall). Files are read once, when the app is made; a request names one of them, never a path.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import falcon

from mlxcli.core.errors import RouteNotFound
from mlxcli.server.providers.base import Route

PAGE = "/ui"
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "markdown.js": "text/javascript; charset=utf-8",
    "conversations.js": "text/javascript; charset=utf-8",
    "key.js": "text/javascript; charset=utf-8",
    "images.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
ASSETS = tuple(name for name in MEDIA_TYPES if name != "index.html")
PATHS = frozenset({PAGE, *(f"{PAGE}/{name}" for name in ASSETS)})  # open without an API key
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # generated images, shown from the answer's base64
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cache-Control", "no-cache"),  # revalidate (cheap: ETag), so an upgraded server serves its own page
)


class Page:
    def __init__(self) -> None:
        static = resources.files(__package__).joinpath("static")
        self.files = {name: static.joinpath(name).read_bytes() for name in MEDIA_TYPES}
        self.etags = {name: hashlib.sha256(data).hexdigest()[:16] for name, data in self.files.items()}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._send(req, resp, "index.html")

    def on_get_asset(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in ASSETS:
            raise RouteNotFound(f"No such file: {PAGE}/{name}.")
        self._send(req, resp, name)

    def _send(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        for header, value in HEADERS:
            resp.set_header(header, value)
        resp.etag = self.etags[name]
        if any(tag == self.etags[name] for tag in req.if_none_match or ()):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = MEDIA_TYPES[name]
        resp.data = self.files[name]


def routes() -> list[Route]:
    page = Page()
    return [Route(PAGE, page), Route(PAGE + "/{name}", page, "asset")]
