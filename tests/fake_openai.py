"""A tiny OpenAI-compatible server for UI tests: real HTTP on loopback, scripted failures.

    with FakeOpenAI() as fake:          # starts on a free 127.0.0.1 port
        fake.base_url                   # http://127.0.0.1:PORT/v1
        fake.mode = "error"             # the next chat completions answer HTTP 500
        fake.received                   # the `messages` of every chat request, in order
        fake.extra_models = ["b", "c"]  # GET /v1/models lists these after fake.model, and
                                        # chat completions answer for any listed id
        fake.max_model_len = 256        # the context each listed model has (2048 by default), in
                                        # /v1/models as vLLM lists it; a request whose prompt plus
                                        # max_tokens exceeds it gets vLLM's HTTP 400
                                        # (prompt_tokens: one token per UTF-8 byte, the worst case)

Modes for POST /v1/chat/completions (streaming SSE, or one JSON answer without stream):
  echo      answer_for(messages), streamed in small pieces, then finish_reason "stop" and [DONE]
  long      a long answer, slowly (for the Stop button)
  error     HTTP 500 with an OpenAI-style error body
  drop      half the answer, then the connection is cut mid-body
  truncate  half the answer, then the body ends cleanly without finish_reason or [DONE]
stop() closes the port (connection refused); start() opens the same port again.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("echo", "long", "error", "drop", "truncate")
FAKE_MODEL = "fake-persona"
LONG_ANSWER = " ".join(f"word{i}" for i in range(400))


def answer_for(messages: list[dict]) -> str:
    """The echo answer: says how many turns it saw and repeats the last user message."""
    last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    users = sum(1 for m in messages if m.get("role") == "user")
    return f"我是测试助手。This is turn {users}. You said: {last}"


def prompt_tokens(messages: list[dict]) -> int:
    """The prompt's length as the fake counts it: a worst-case tokenizer, one token per UTF-8
    byte, and ChatML's few tokens around each message."""
    return sum(len(str(m.get("content", "")).encode()) + 4 for m in messages) + 3


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


class FakeOpenAI:
    TOKEN_DELAY_S = 0.03  # between streamed pieces, unless told otherwise

    def __init__(self, model: str = FAKE_MODEL, api_key: str | None = None,
                 token_delay_s: float = TOKEN_DELAY_S, port: int = 0):
        self.model = model
        self.api_key = api_key
        self.token_delay_s = token_delay_s
        self.mode = "echo"
        self.extra_models: list[str] = []
        self.max_model_len: int | None = 2048
        self.requests: list[dict] = []  # every chat completion request body
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        server.daemon_threads = True
        self._port = server.server_address[1]  # keep the port across stop()/start()
        self._server = server
        threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def models(self) -> list[str]:
        return [self.model, *self.extra_models]

    @property
    def received(self) -> list[list[dict]]:
        with self._lock:
            return [body.get("messages", []) for body in self.requests]

    def record(self, body: dict) -> None:
        with self._lock:
            self.requests.append(body)


def _handler_for(fake: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked bodies, like uvicorn behind vLLM

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        # -- plumbing ------------------------------------------------------------
        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            # No keep-alive: stop() must leave no connection being served.
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _event(self, payload: dict | str) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            self._chunk(f"data: {text}\n\n".encode())

        def _authorized(self) -> bool:
            if fake.api_key is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._json(401, {"error": {"message": "Unauthorized", "type": "invalid_request_error"}})
            return False

        # -- routes --------------------------------------------------------------
        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {})
            elif self.path == "/v1/models":
                if self._authorized():
                    self._json(200, {"object": "list", "data": [
                        {"id": model, "object": "model", "created": 0, "owned_by": "fake",
                         **({"max_model_len": fake.max_model_len} if fake.max_model_len else {})}
                        for model in fake.models]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            if not self._authorized():
                return
            if body.get("model") not in fake.models:
                self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                           "type": "NotFoundError", "code": 404}})
                return
            fake.record(body)
            if self._beyond_context(body):
                return
            mode = fake.mode
            if mode == "error":
                self._json(500, {"error": {"message": "fake internal error",
                                           "type": "InternalServerError", "code": 500}})
                return
            text = answer_for(body.get("messages", []))
            if mode == "long":
                text = LONG_ANSWER
            if not body.get("stream"):
                self._json(200, _completion(body["model"], text))
                return
            self._stream(text, mode, body["model"])

        def _beyond_context(self, body: dict) -> bool:
            """vLLM's refusal of a prompt plus max_tokens longer than the context."""
            prompt = prompt_tokens(body.get("messages", []))
            wanted = body.get("max_tokens") or 0
            if fake.max_model_len is None or prompt + wanted <= fake.max_model_len:
                return False
            self._json(400, {"error": {
                "message": f"This model's maximum context length is {fake.max_model_len} tokens. "
                           f"However, you requested {prompt + wanted} tokens ({prompt} in the "
                           f"messages, {wanted} in the completion). Please reduce the length of "
                           "the messages or completion.",
                "type": "BadRequestError", "param": None, "code": 400}})
            return True

        def _stream(self, text: str, mode: str, model: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            parts = pieces(text)
            if mode in ("drop", "truncate"):
                parts = parts[: max(1, len(parts) // 2)]
            delay = fake.token_delay_s * (3 if mode == "long" else 1)
            created = int(time.time())
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                    "created": created, "model": model}
            try:
                self._event({**base, "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
                for part in parts:
                    time.sleep(delay)
                    self._event({**base, "choices": [
                        {"index": 0, "delta": {"content": part}, "finish_reason": None}]})
                if mode == "drop":
                    # Cut the connection mid-body: no final chunk, no finish_reason.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "echo" or mode == "long":
                    self._event({**base, "choices": [
                        {"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self._event("[DONE]")
                self._chunk(b"")  # the chunked body's clean end
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (e.g. the Stop button)

    return Handler


def _completion(model: str, text: str) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


if __name__ == "__main__":  # a manual check: python -m tests.fake_openai
    with FakeOpenAI() as fake:
        print(fake.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
