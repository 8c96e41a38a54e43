"""A recording HTTP proxy in front of a real OpenAI-compatible server, for tests.

    with RecordingProxy("http://127.0.0.1:8000/v1") as proxy:
        proxy.base_url                  # http://127.0.0.1:PORT/v1: point the client here
        proxy.chat_requests()           # the JSON body of every POST .../chat/completions
        proxy.streamed_texts()          # what the server streamed back for each of them

Everything is forwarded unchanged and streamed through as it arrives, so a client sees the
server's own answers, errors and timing; only what passed is written down.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers are the proxy's own business; Accept-Encoding is dropped so the
# recorded answer is plain text.
_SKIP_REQUEST = {"host", "connection", "keep-alive", "accept-encoding", "content-length",
                 "transfer-encoding"}
_SKIP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Exchange:
    method: str
    path: str
    body: dict | None
    status: int = 0
    response: bytearray = field(default_factory=bytearray)


def sse_deltas(raw: bytes) -> list[str]:
    """The content pieces of a streamed chat completion, one per chunk, in order."""
    pieces = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        for choice in json.loads(line[len("data: "):]).get("choices", []):
            content = (choice.get("delta") or {}).get("content")
            if content:
                pieces.append(content)
    return pieces


class RecordingProxy:
    def __init__(self, upstream_base_url: str):
        parts = urlsplit(upstream_base_url)
        if parts.scheme != "http":
            raise ValueError(f"only http upstreams are proxied, not {upstream_base_url}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.api_path = parts.path.rstrip("/")
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "RecordingProxy":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="recording-proxy",
                         daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.api_path}"

    def _chats(self) -> list[Exchange]:
        with self._lock:
            return [x for x in self.exchanges
                    if x.method == "POST" and x.path.endswith("/chat/completions")]

    def chat_requests(self) -> list[dict]:
        return [x.body or {} for x in self._chats()]

    def streamed_pieces(self) -> list[list[str]]:
        return [sse_deltas(bytes(x.response)) for x in self._chats()]

    def streamed_texts(self) -> list[str]:
        return ["".join(pieces) for pieces in self.streamed_pieces()]


def _handler_for(proxy: RecordingProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def _forward(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            exchange = Exchange(self.command, self.path, body)
            with proxy._lock:
                proxy.exchanges.append(exchange)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_REQUEST}
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=600)
            try:
                upstream.request(self.command, self.path, body=raw or None, headers=headers)
                response = upstream.getresponse()
                exchange.status = response.status
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _SKIP_RESPONSE:
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                # read1: whatever has arrived, so a streamed answer is passed on piece by piece.
                while data := response.read1(65536):
                    exchange.response.extend(data)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (the Stop button)
            except OSError as error:
                if not exchange.status:
                    self.send_error(502, f"upstream unreachable: {error}")
            finally:
                upstream.close()

    return Handler
