"""The one gate in front of the model: a pure ASGI middleware that vLLM runs outermost
(`--middleware persona.serve.gate.PersonaGate`, added by serve/server.py and deploy/).

vLLM 0.32 checks its key only under /v1, /v2, /inference and /cohere: /invocations runs a chat
completion without it, and /tokenize, /metrics, /load, /version, /pooling answer anyone. Here
every path needs `Authorization: Bearer <key>` except `GET /health` and `GET /ping`; the API
docs (/docs, /redoc, /openapi.json) answer 404 to everyone; a CORS preflight goes on to vLLM's
own CORS layer (which refuses foreign origins unless --allowed-origins opens them). The bodies
of the generation routes are read first and refused with an OpenAI-style 400 when `n`,
`max_tokens` or a message role is out of bounds, then replayed to vLLM unchanged. A live server
(runtime LoRA loading on) loads adapters only from under the folder PERSONA_GATE_ADAPTER_ROOT
names (persona's runs), and only through /v1/load_lora_adapter: SageMaker's /adapters routes,
which take any path, answer 404.

Stdlib only: it runs inside vLLM's process (serve env, or the vLLM image), and the app env's
tests drive it directly. The key comes from VLLM_API_KEY (as vLLM's own check reads it), the
caps from the variables named below, all set by whoever launches vLLM.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

MIDDLEWARE = "persona.serve.gate.PersonaGate"  # what vLLM's --middleware imports
KEY_ENV = "VLLM_API_KEY"
MAX_CHOICES_ENV = "PERSONA_GATE_MAX_N"
MAX_TOKENS_ENV = "PERSONA_GATE_MAX_TOKENS"
ADAPTER_ROOT_ENV = "PERSONA_GATE_ADAPTER_ROOT"
DEFAULT_MAX_CHOICES = 4

OPEN = frozenset({("GET", "/health"), ("GET", "/ping")})  # probes: no key
HIDDEN = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
GENERATION = frozenset({"/v1/chat/completions", "/v1/completions", "/invocations"})
LOAD_ADAPTER = "/v1/load_lora_adapter"
SAGEMAKER_ADAPTERS = "/adapters"  # and /adapters/<name>
ROLES = ("system", "user", "assistant", "developer", "tool")
# The persona models' context is 2048 tokens; a body this large is no chat request.
MAX_BODY_BYTES = 4 * 1024 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; max_tokens None leaves the context check to vLLM."""

    max_choices: int = DEFAULT_MAX_CHOICES
    max_tokens: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Limits":
        try:
            choices = int(env.get(MAX_CHOICES_ENV) or DEFAULT_MAX_CHOICES)
            tokens = int(env[MAX_TOKENS_ENV]) if env.get(MAX_TOKENS_ENV) else None
        except ValueError:
            raise RuntimeError(f"{MAX_CHOICES_ENV} and {MAX_TOKENS_ENV} must be whole numbers") from None
        return cls(choices, tokens)


@dataclass(frozen=True)
class Refusal:
    """An answer the gate gives itself, in the body shape vLLM's own errors have."""

    status: int
    message: str
    type: str = "BadRequestError"
    param: str | None = None

    def body(self) -> bytes:
        return json.dumps({"error": {"message": self.message, "type": self.type,
                                     "param": self.param, "code": self.status}}).encode()


UNAUTHORIZED = Refusal(401, "Unauthorized: send the API key as 'Authorization: Bearer <key>'",
                       "AuthenticationError")
NOT_FOUND = Refusal(404, "Not Found", "NotFoundError")


def _number(value: Any) -> float | None:
    """A value as vLLM's pydantic models would read a number (bools and non-numbers: None)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _over(request: dict, field: str, cap: int | None) -> bool:
    value = _number(request.get(field))
    return cap is not None and value is not None and value > cap


def _bad_role(messages: Any) -> Any:
    """The first message role outside ROLES (None when every message is fine)."""
    for message in messages if isinstance(messages, list) else []:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            return role if isinstance(role, str) else repr(role)
    return None


def check_generation(body: bytes, limits: Limits) -> Refusal | None:
    """Why a chat or completion request must not reach the model, or None."""
    if len(body) > MAX_BODY_BYTES:
        return Refusal(413, f"the request body is over {MAX_BODY_BYTES} bytes", "RequestTooLarge")
    try:
        request = json.loads(body)
    except ValueError as error:  # UnicodeDecodeError is a ValueError too
        return Refusal(400, f"the body is not valid JSON: {error}")
    if not isinstance(request, dict):
        return Refusal(400, "the body must be a JSON object")
    if _over(request, "n", limits.max_choices):
        return Refusal(400, f"n={request['n']}: this server returns at most "
                            f"{limits.max_choices} choices per request", param="n")
    for field in ("max_tokens", "max_completion_tokens"):
        if _over(request, field, limits.max_tokens):
            return Refusal(400, f"{field}={request[field]} is more than the model's context "
                                f"({limits.max_tokens} tokens)", param=field)
    if (role := _bad_role(request.get("messages"))) is not None:
        return Refusal(400, f"message role {role} is not one of {', '.join(ROLES)}",
                       param="messages")
    return None


def check_adapter_load(body: bytes, root: str | None) -> Refusal | None:
    """Why an adapter must not be loaded from the path a load request names, or None: only
    folders under root (symlinks resolved: no way out through one) load."""
    if not root:
        return Refusal(403, "this server loads no adapters at run time", "PermissionDeniedError")
    try:
        request = json.loads(body)
    except ValueError as error:
        return Refusal(400, f"the body is not valid JSON: {error}")
    path = request.get("lora_path") if isinstance(request, dict) else None
    if not isinstance(path, str) or not path:
        return Refusal(400, "lora_path must name an adapter folder", param="lora_path")
    allowed = os.path.realpath(root)
    if os.path.commonpath([allowed, os.path.realpath(path)]) != allowed:
        return Refusal(403, f"adapters load only from persona's runs under {root}; {path} is "
                            f"outside it", "PermissionDeniedError", "lora_path")
    return None


async def read_body(receive: Receive) -> bytes | None:
    """The request body, stopping once it passes MAX_BODY_BYTES; None if the client left."""
    body = bytearray()
    while len(body) <= MAX_BODY_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the client's own events (a
    streaming response listens there for the client leaving)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def answer(send: Send, refusal: Refusal) -> None:
    body = refusal.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """Request headers by lower-case name (ASGI gives them lower-case); the first of repeats."""
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.lower(), value)
    return found


def _path(scope: Scope) -> str:
    """The path the app routes on (vLLM's own key check strips root_path the same way)."""
    return scope["path"].removeprefix(scope.get("root_path", ""))


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


class PersonaGate:
    """vLLM calls PersonaGate(app); the tests pass the key and limits directly."""

    def __init__(self, app: Callable, api_key: str | None = None, limits: Limits | None = None,
                 adapter_root: str | None = None):
        key = api_key if api_key is not None else os.environ.get(KEY_ENV, "")
        if not key:  # no key would mean an open server: refuse to start instead
            raise RuntimeError(f"PersonaGate needs the API key in {KEY_ENV}")
        self.app = app
        self._key = _digest(key.encode())
        self.limits = limits or Limits.from_env(os.environ)
        self.adapter_root = (adapter_root if adapter_root is not None
                             else os.environ.get(ADAPTER_ROOT_ENV) or None)

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        """`Bearer <key>`, compared in constant time over digests (as vLLM compares)."""
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(_digest(token), self._key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket" and not self.authorized(_headers(scope)):
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        else:
            await self.app(scope, receive, send)  # lifespan, and authorized websockets

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path, headers = scope["method"], _path(scope), _headers(scope)
        if path in HIDDEN or path == SAGEMAKER_ADAPTERS or path.startswith(SAGEMAKER_ADAPTERS + "/"):
            return await answer(send, NOT_FOUND)
        preflight = method == "OPTIONS" and b"origin" in headers \
            and b"access-control-request-method" in headers
        if (method, path) not in OPEN and not preflight and not self.authorized(headers):
            return await answer(send, UNAUTHORIZED)
        if method == "POST" and (path in GENERATION or path == LOAD_ADAPTER):
            body = await read_body(receive)
            if body is None:
                return  # the client left: nothing to answer
            refusal = (check_adapter_load(body, self.adapter_root) if path == LOAD_ADAPTER
                       else check_generation(body, self.limits))
            if refusal is not None:
                return await answer(send, refusal)
            receive = replay(body, receive)
        await self.app(scope, receive, send)
