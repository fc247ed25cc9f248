"""Servers on loopback for the remote-archive tests, each counting what crosses the wire.

- ``RangeServer``: a static HTTP server (stdlib ``http.server``) that honours single byte
  ranges, as object stores and CDNs do; it serves files from a dict.
- ``S3Proxy``: moto's standalone S3 server behind a small counting reverse proxy, so that
  requests and response bytes are measured outside the client under test; it can refuse
  chosen requests (an upload that fails half-way).
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)\Z")


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    sent: int  # response body bytes


@dataclass
class Log:
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.requests)

    def gets(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[_Server, str]:
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class RangeServer:
    """Serves ``files`` (path -> bytes) over HTTP/1.1 with ``Range: bytes=a-b`` support."""

    def __init__(self, *, honour_ranges: bool = True) -> None:
        self.files: dict[str, bytes] = {}
        self.log = Log()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, *, head: bool) -> None:
                data = outer.files.get(self.path.split("?")[0])
                wanted = self.headers.get("Range")
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    outer.log.add(Request(self.command, self.path, wanted, 0))
                    return
                body, status = data, 200
                match = _RANGE.match(wanted or "") if outer_honours else None
                if match:
                    start = int(match.group(1))
                    end = min(len(data), int(match.group(2)) + 1 if match.group(2) else len(data))
                    body, status = data[start:end], 206
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes" if outer_honours else "none")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                self.end_headers()
                # Logged before the body goes out: a client that has the body may look at the log.
                outer.log.add(Request(self.command, self.path, wanted, 0 if head else len(body)))
                if not head:
                    self.wfile.write(body)

        outer_honours = honour_ranges
        self.server, self.url = _serve(Handler)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class S3Proxy:
    """moto's S3 server on loopback, behind a proxy that counts and can refuse requests.

    ``refuse`` decides per request (method, path with query) whether to answer 403
    AccessDenied instead of forwarding it (botocore does not retry a 403).
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        moto_host, moto_port = self.moto.get_host_and_port()
        self.log = Log()
        self.refuse: Callable[[str, str], bool] = lambda method, path: False
        # A request ``hold`` picks is received whole, then held unanswered (``held`` is set)
        # until ``release`` is set, and then dropped unforwarded: a client killed meanwhile
        # died mid-upload, as far as the store can tell.
        self.hold: Callable[[str, str], bool] = lambda method, path: False
        self.held, self.release = threading.Event(), threading.Event()
        outer = self

        class Proxy(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if outer.hold(self.command, self.path):
                    outer.log.add(Request(self.command, self.path, None, 0))
                    outer.held.set()
                    outer.release.wait(60)
                    self.close_connection = True
                    return
                if outer.refuse(self.command, self.path):
                    error = b"<Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>"
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    outer.log.add(Request(self.command, self.path, None, len(error)))
                    return
                connection = http.client.HTTPConnection(moto_host, moto_port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length_header = response.getheader("Content-Length")
                self.send_header("Content-Length", length_header if self.command == "HEAD" and
                                 length_header is not None else str(len(data)))
                self.end_headers()
                # Logged before the body goes out: a client that has the body may look at the log.
                outer.log.add(Request(self.command, self.path, self.headers.get("Range"), len(data)))
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server, self.url = _serve(Proxy)

    def options(self) -> dict:
        """``storage_options`` for s3fs: this endpoint and moto's dummy credentials."""
        return {"endpoint_url": self.url, "key": "testing", "secret": "testing",
                "client_kwargs": {"region_name": "eu-west-1"}, "skip_instance_cache": True,
                # moto assembles a large multipart upload slowly: wait for it, never retry it.
                "config_kwargs": {"read_timeout": 600}}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.moto.stop()
