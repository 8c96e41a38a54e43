"""A live server's model list and adapter routes (vLLM's /v1/models, /v1/load_lora_adapter,
/v1/unload_lora_adapter), as `persona add`, `remove` and `list` call them; every failure becomes
one LiveError that says what to do. Stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from persona.serve.live import LiveError
from persona.services import open_local

TIMEOUT_S = 300  # a load reads the adapter from disk and may wait for running batches


def _call(api_url: str, key: str, route: str, body: dict | None = None) -> bytes:
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/{route}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with open_local(request, timeout=TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise LiveError(_refusal(api_url, route, error)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise LiveError(f"no server answers at {api_url} ({reason}); start it with "
                        f"`persona serve --adapters CARD,...` or `--base BASE`") from None


def _refusal(api_url: str, route: str, error: urllib.error.HTTPError) -> str:
    if error.code == 401:
        return (f"the server at {api_url} refused the key: set PERSONA_API_KEY to the key it "
                f"printed when it started")
    try:
        message = json.loads(error.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = error.reason
    if error.code == 404 and route != "unload_lora_adapter":
        return (f"the server at {api_url} has no /{route} ({message}): it was not started "
                f"by `persona serve --adapters/--base`, which takes personas at run time")
    return f"the server at {api_url} refused /{route} ({error.code}): {message}"


def models(api_url: str, key: str) -> list[dict]:
    """/v1/models: the base first, then one entry per adapter (id, root = its path)."""
    return json.loads(_call(api_url, key, "models"))["data"]


def load(api_url: str, key: str, name: str, path: str, replace: bool = False) -> None:
    """Load the adapter at path under name; replace swaps the one served under that name."""
    _call(api_url, key, "load_lora_adapter",
          {"lora_name": name, "lora_path": path, "load_inplace": replace})


def unload(api_url: str, key: str, name: str) -> None:
    _call(api_url, key, "unload_lora_adapter", {"lora_name": name})
