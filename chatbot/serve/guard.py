"""What both servers (the web app and the HTTP API) check before a request reaches them.

:class:`RequestGuard` is ASGI middleware that refuses, with ``{"detail": message}``:

- a Host header not in ``Settings.allowed_hosts`` (400): a web page on another name that resolves to
  this machine (DNS rebinding) cannot talk to the server through the user's browser;
- a state-changing request (any method but GET/HEAD/OPTIONS) whose ``Origin`` is not the server's own
  (403): another site's page cannot upload files or run questions through the user's browser
  (programs that send no ``Origin``, such as curl or gradio_client, are not browsers and pass);
- a body larger than its limit (413, counted as it arrives when no Content-Length is given), or, where
  ``require_length``, a POST, PUT or PATCH without Content-Length (411).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # those whose body ``require_length`` wants announced


def _too_large(limit: int, hint: str = "") -> str:
    return f"The request body is larger than {limit} bytes." + (f" {hint}" if hint else "")


class BodyTooLarge(HTTPException):
    """Raised while the app reads a body past its limit; the app's own handler answers 413 with it."""

    def __init__(self, limit: int, hint: str = ""):
        super().__init__(413, _too_large(limit, hint))


def host_name(host: str) -> str:
    """The name of a Host header or URL netloc, without port or IPv6 brackets, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestGuard:
    """ASGI middleware: Host, Origin and body-size checks (see the module docstring).

    ``body_limit(path)`` is the most bytes a request body to ``path`` may have; ``body_hint(path)``,
    when given, what the 413 message adds (how to send less: the settings that set the limit).
    """

    def __init__(self, app, *, allowed_hosts: Iterable[str], body_limit: Callable[[str], int],
                 body_hint: Callable[[str], str] | None = None, require_length: bool = False):
        self.app = app
        hosts = {host_name(h) for h in allowed_hosts}
        self.any_host = "*" in hosts
        self.allowed_hosts = frozenset(hosts)
        self.body_limit = body_limit
        self.body_hint = body_hint or (lambda path: "")
        self.require_length = require_length

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.allowed_hosts:
            return await _refuse(send, 400, f"Host {host!r} is not served here: add it to CHATBOT_ALLOWED_HOSTS "
                                            "(comma-separated) to serve it.")
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if method not in SAFE_METHODS and origin is not None and not self._same_origin(origin, host):
            return await _refuse(send, 403, f"Requests from the page {origin!r} are not accepted: only this "
                                            "server's own page may send them.")
        if method in SAFE_METHODS:
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit, hint = self.body_limit(path), self.body_hint(path)
        length = headers.get("content-length")
        if length is None and self.require_length and method in BODY_METHODS:
            return await _refuse(send, 411, "Send the body with a Content-Length header.")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _refuse(send, 413, _too_large(limit, hint))
        return await self._counted(scope, receive, send, limit, hint)

    def _same_origin(self, origin: str, host: str) -> bool:
        netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
        return bool(netloc) and (netloc == host.lower() or self.any_host)

    async def _counted(self, scope, receive, send, limit: int, hint: str):
        """Pass the request on, refusing it (413) once its body grows past ``limit`` bytes."""
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, hint)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:  # read outside the app's exception handling
            if not started:
                await _refuse(send, 413, _too_large(limit, hint))


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
