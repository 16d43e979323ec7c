"""Talk to the embedded RunPod's REST v2 and check every request and answer against RunPod's
published OpenAPI document, with openapi-core: the full document when it lies next to the
repository (../shared/reference), else the part the package ships (enough for these routes)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
FULL = ROOT.parent / "shared" / "reference" / "runpod-rest-v2-openapi.json"
SUBSET = ROOT / "runpod_jupyter" / "local" / "v2" / "openapi-subset.json"
CLOUD = "https://api.runpod.io"  # the document's server: requests are checked as if sent there


def _uri(value: Any) -> bool:
    """``format: uri``, reading a ``{job_id}`` placeholder as RunPod's own examples of
    ``requestUrls`` write it (a URI template; the rest must be a URI)."""
    from openapi_schema_validator import oas31_format_checker

    filled = re.sub(r"\{[A-Za-z_]+\}", "x", value) if isinstance(value, str) else value
    return oas31_format_checker.conforms(filled, "uri")


@functools.lru_cache(maxsize=1)
def spec() -> Any:
    from openapi_core import Config, OpenAPI

    document = json.loads((FULL if FULL.exists() else SUBSET).read_text())
    return OpenAPI.from_dict(document, config=Config(
        extra_format_validators={"uri": _uri},
        extra_media_type_deserializers={"application/problem+json": lambda raw, **_: json.loads(raw)},  # JSON, by RFC 9457
    ))


def call(instance, method: str, path: str, body: Any = None, *, key: str | None = None,
         headers: dict[str, str] | None = None, check_request: bool = True) -> httpx.Response:
    """One v2 request to ``instance``; its answer is checked against the document (its request
    too, unless it is meant to be wrong)."""
    from openapi_core.testing import MockRequest, MockResponse

    sent = {"Authorization": f"Bearer {instance.api_key.reveal() if key is None else key}", **(headers or {})}
    if not sent["Authorization"].removeprefix("Bearer ").strip():
        sent.pop("Authorization")
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        sent["Content-Type"] = "application/json"
    response = httpx.request(method, f"{instance.url}{path}", content=data, headers=sent, timeout=30)
    request = MockRequest(CLOUD, method.lower(), path.partition("?")[0], headers=sent, data=data,
                          args=dict(httpx.URL(path).params))
    if check_request and sent.get("Authorization"):
        spec().validate_request(request)
    text = response.headers.get("content-type", "").startswith("text/")  # an event stream: a string
    answer = MockResponse(response.text if text else response.content, status_code=response.status_code,
                          headers=dict(response.headers), content_type=response.headers.get("content-type", ""))
    spec().validate_response(request, answer)
    return response


#: The management collections of v2 (the job API shares ``/v2/`` but is not in the document).
COLLECTIONS = ("serverless", "templates", "registries", "network-volumes", "catalog", "billing", "pods", "account")


class CheckedTransport(httpx.HTTPTransport):
    """A real transport that checks every REST v2 management request our client sends, and its
    answer, against the document; ``checked`` lists what was checked (method, path)."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from openapi_core.testing import MockRequest, MockResponse

        response = super().handle_request(request)
        path = request.url.path
        if path.split("/")[2:3] and path.split("/")[2] in COLLECTIONS:
            response.read()
            data = request.content or None
            mock = MockRequest(CLOUD, request.method.lower(), path, headers=dict(request.headers), data=data,
                               args=dict(request.url.params))
            spec().validate_request(mock)
            answer = MockResponse(response.content, status_code=response.status_code, headers=dict(response.headers),
                                  content_type=response.headers.get("content-type", ""))
            spec().validate_response(mock, answer)
            self.checked.append((request.method, path))
        return response
