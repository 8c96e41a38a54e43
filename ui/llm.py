"""Streaming one answer from the OpenAI-compatible API, and naming what went wrong.

No chainlit here: the app passes a callback that shows each token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import openai

from persona.ui.settings import UISettings

OnToken = Callable[[str], Awaitable[None]]
log = logging.getLogger("persona.ui")


class StreamDropped(Exception):
    """The answer stopped before the server said it was finished."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Reply:
    text: str = ""
    finish_reason: str | None = None


def make_client(settings: UISettings) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key,
        # read= is the longest wait between two streamed chunks: a CPU server can be slow.
        timeout=openai.Timeout(settings.timeout_s, connect=10.0),
        # One retry covers a connection reset; more would leave the user staring at nothing.
        max_retries=1,
    )


async def served_models(client: openai.AsyncOpenAI, timeout_s: float = 5.0) -> dict[str, int | None]:
    """The model ids the server lists (GET /v1/models), in its order, each with its context in
    tokens: vLLM lists `max_model_len` in every entry (None where a server does not).

    A short timeout and no retry: the chat page waits for this list before it opens.
    """
    page = await client.with_options(timeout=timeout_s, max_retries=0).models.list()
    listed = {}
    for model in page.data:
        value = (model.model_extra or {}).get("max_model_len")
        valid = isinstance(value, int) and not isinstance(value, bool) and value > 0
        listed[model.id] = value if valid else None
    return listed


async def stream_reply(
    client: openai.AsyncOpenAI,
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    temperature: float,
    on_token: OnToken,
    reply: Reply | None = None,
) -> Reply:
    """Stream one answer into `reply` (so a caller that is cancelled still holds the partial text).

    Errors before the first chunk propagate as the client's exceptions; a stream that
    breaks or ends without a finish_reason raises StreamDropped.
    """
    reply = Reply() if reply is None else reply
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=max_tokens,  # always sent: the server's default may be the whole context
        temperature=temperature,
        stream=True,
    )
    try:
        async for chunk in stream:
            for choice in chunk.choices:
                token = choice.delta.content if choice.delta else None
                if token:
                    reply.text += token
                    await on_token(token)
                if choice.finish_reason:
                    reply.finish_reason = choice.finish_reason
    except openai.APIConnectionError as error:
        cause = error.__cause__
        detail = f" ({_short(cause)})" if cause is not None else ""
        raise StreamDropped(f"the connection to the model server was lost{detail}") from error
    except (openai.APIError, OSError) as error:
        raise StreamDropped(_short(error)) from error
    except Exception as error:
        # httpx' transport errors (e.g. "incomplete chunked read") surface here unwrapped.
        if type(error).__module__.split(".")[0].startswith("httpx"):
            raise StreamDropped(_short(error)) from error
        raise
    finally:
        await stream.close()
    if reply.finish_reason is None:
        raise StreamDropped("the server closed the stream before finishing the answer")
    return reply


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _status_detail(error: openai.APIStatusError) -> str:
    """The server's own message (vLLM: {"error": {"message": ...}} or the inner dict)."""
    body = error.body
    message = None
    if isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message") if isinstance(inner, dict) else body.get("message")
    return _short(Exception(message)) if isinstance(message, str) and message else _short(error)


# What each kind of failure tells the person, in English and Chinese; the first matching class
# wins (subclasses before their bases). Fields: url, reason, detail, status.
ERROR_MESSAGES = [
    (StreamDropped,
     "The answer was cut off: {reason}. The partial text above is kept; send your message again "
     "to continue.", "回答中断了。已保留上面的部分内容，请重新发送消息。"),
    (openai.APITimeoutError,
     "The model server at {url} did not answer in time. Please try again.",
     "模型服务响应超时，请稍后重试。"),
    (openai.APIConnectionError,
     "Cannot reach the model server at {url}. Is it running? Send your message again once it "
     "is up.", "无法连接模型服务，请确认服务已启动后重新发送。"),
    (openai.AuthenticationError,
     "The model server refused the API key (HTTP 401). Check PERSONA_API_KEY.",
     "模型服务拒绝了 API 密钥（HTTP 401）。"),
    (openai.NotFoundError,
     "The model server does not serve {model} (HTTP 404): {detail}. If it was removed from the "
     "server, start a new chat and pick a persona it serves; else check PERSONA_MODEL.",
     "模型服务不提供 {model}（HTTP 404），可能已被移除。请开始新的对话，选择仍在服务的角色。"),
    (openai.BadRequestError,
     "The model server refused the request (HTTP 400): {detail}. If your message is too long "
     "for the model, shorten it or split it, or start a new chat; else lower Max tokens in the "
     "settings.",
     "模型服务拒绝了请求（HTTP 400）。如果消息太长，请缩短或分段发送，或开始新的对话。"),
    (openai.APIStatusError,
     "The model server returned an error (HTTP {status}): {detail}. Please try again.",
     "模型服务返回错误（HTTP {status}），请重试。"),
    (BaseException, "Something went wrong: {kind}: {short}", "出错了，请重试。"),
]


def describe_error(error: BaseException, base_url: str, model: str = "this model") -> str:
    """A message a person can act on, in English and Chinese."""
    fields = {"url": base_url, "model": model, "kind": type(error).__name__, "short": _short(error),
              "reason": getattr(error, "reason", "").rstrip("."),
              "status": getattr(error, "status_code", ""),
              "detail": _status_detail(error) if isinstance(error, openai.APIStatusError) else ""}
    english, chinese = next((en, zh) for kind, en, zh in ERROR_MESSAGES if isinstance(error, kind))
    return f"⚠️ {english.format(**fields)}\n\n⚠️ {chinese.format(**fields)}"
