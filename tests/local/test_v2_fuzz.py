"""The embedded RunPod's REST v2 under schemathesis: requests generated from RunPod's own OpenAPI
document (the part the package ships), valid ones and invalid ones, sent with the key to a live
embedded RunPod, every answer checked: no 5xx, a documented status code, a documented content type
(JSON, problem+json, an event stream for logs), a body of the documented shape, and an invalid
request refused. Bounded: a few examples per operation and mode, no shrinking, a deadline overall.

Left out: ``/v2/pods...`` (not served: 501 by design, checked in test_local_v2_conventions.py).
Worker logs follow a live worker until it exits; no worker runs here, so that route answers 404
at once for every generated id and never streams."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow  # about half a minute of generated requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from runpod_jupyter.local.v2.schema import SUBSET  # noqa: E402

#: Examples per operation and generation mode (the whole run stays well under a minute on two
#: cores); RUNPOD_JUPYTER_FUZZ_EXAMPLES=200 for a deeper, randomized run by hand.
EXAMPLES = int(os.environ.get("RUNPOD_JUPYTER_FUZZ_EXAMPLES", "6"))
#: No new operation is started after this many seconds (each finishes what it started).
BUDGET_S = 75.0 if "RUNPOD_JUPYTER_FUZZ_EXAMPLES" not in os.environ else 1800.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance, negative_data_rejection]
#: Valid requests may still be refused for reasons stated only in the document's prose (exactly one
#: of gpu/cpu, include=AVAILABILITY needs product, a LOAD_BALANCER or CPU endpoint the embedded
#: RunPod does not run, an unknown template or pool): 400s; an id nobody made: 404; a deep run
#: spends the key's budget per minute: 429.
ACCEPTED = ["2xx", "400", "404", "429"]


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SUBSET.read_text())
    document["paths"] = {p: ops for p, ops in document["paths"].items() if not p.startswith("/v2/pods")}
    document["servers"] = [{"url": "http://127.0.0.1"}]  # replaced by the live server's URL per call
    # requestUrls are URI templates, as the document's own examples write them (".../status/{job_id}"),
    # which a strict `format: uri` refuses: read them as v2_contract.py does, an http(s) URL.
    schemas = document["components"]["schemas"]
    for name in ("QueueBasedRequestUrls", "LoadBalancingRequestUrls"):
        for prop in schemas.get(name, {}).get("properties", {}).values():
            if prop.pop("format", None) == "uri":
                prop["pattern"] = r"^https?://[^\s]+$"
    return document


def _schema() -> Any:
    config = schemathesis.Config.from_dict({
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        # The key is sent with every request (401s are test_local_v2_conventions.py's), and a query
        # parameter the document does not declare is not invalid in OpenAPI: neither is generated.
        "generation": {"with-security-parameters": False, "allow-extra-parameters": False},
    })
    return schemathesis.openapi.from_dict(_document(), config=config)


def _fuzz(operation: Any, mode: Any, base: str, auth: dict[str, str], **fixed: Any) -> tuple[int, list[str]]:
    """Send ``EXAMPLES`` generated requests for ``operation`` in ``mode``: (sent, what failed)."""
    sent, failed = [], []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize="RUNPOD_JUPYTER_FUZZ_EXAMPLES" not in os.environ,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: Any) -> None:
        response = case.call(base_url=base, headers=auth, timeout=30)
        sent.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except (Exception, FailureGroup) as exc:  # schemathesis' failure groups: reported at the end
            failed.append(f"{operation.label} [{mode.value}]: {exc}")

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no input): nothing sent
        run()
    return len(sent), failed[:2]  # the first two of an operation and mode say enough


def _seed(base: str, auth: dict[str, str]) -> dict[str, str]:
    """One of each kind of record, so that item operations also meet ids that exist (their image
    is no project on this machine: no worker of it can run)."""
    def made(path: str, body: dict[str, Any]) -> str:
        response = httpx.post(f"{base}{path}", json=body, headers=auth, timeout=30)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    image = "local:/nonexistent/fuzz"
    return {
        "/v2/serverless/{id}": made("/v2/serverless", {"name": "fuzz", "type": "QUEUE", "image": image,
                                                        "gpu": {"pools": ["ADA_24"]}, "workers": {"max": 1},
                                                        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}),
        "/v2/templates/{id}": made("/v2/templates", {"name": "fuzz", "image": image}),
        "/v2/registries/{id}": made("/v2/registries", {"name": "fuzz", "username": "u", "password": "p"}),
        "/v2/network-volumes/{id}": made("/v2/network-volumes", {"name": "fuzz", "size": 10, "dataCenter": "LOCAL"}),
    }


def test_fuzz_rest_v2(local_runpod):
    base = local_runpod.url
    auth = {"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}
    existing = _seed(base, auth)
    failures: list[str] = []
    sent = operations = 0
    started = time.monotonic()
    for result in _schema().get_all_operations():
        if time.monotonic() - started > BUDGET_S:
            break
        operations += 1
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            count, failed = _fuzz(operation, mode, base, auth)
            sent += count
            failures.extend(failed)
        # Valid requests once more on a record that exists (deleting it would end the others' turn).
        owner = "/v2/serverless/{id}" if operation.path.startswith("/v2/serverless/{id}") else operation.path
        real = existing.get(owner)
        if real and operation.method.upper() != "DELETE":
            count, failed = _fuzz(operation, GenerationMode.POSITIVE, base, auth, path_parameters={"id": real})
            sent += count
            failures.extend(failed)
    print(f"RESULT fuzz: {sent} requests over {operations} operations in {time.monotonic() - started:.0f} s")
    assert sent, "no request was sent"
    assert not failures, "\n\n".join(failures)


def test_fuzz_findings_stay_fixed(local_runpod):
    """What earlier runs found: query values outside the document's enums were ignored; a key
    with a U+001F in it (not white space in ECMA-262) was refused; billing wrote year 697 as "697"."""
    auth = {"Authorization": f"Bearer {local_runpod.api_key.reveal()}"}
    bad = httpx.get(f"{local_runpod.url}/v2/catalog/datacenters", params={"networkVolumeTypes": "FAST"}, headers=auth)
    assert bad.status_code == 400 and "networkVolumeTypes" in bad.json()["detail"]
    keys = httpx.put(f"{local_runpod.url}/v2/account/ssh-keys", json={"keys": ["ssh-\x1fQ x"]}, headers=auth)
    assert keys.status_code == 200, keys.text
    billed = httpx.get(f"{local_runpod.url}/v2/billing/serverless", headers=auth,
                       params={"bucketSize": "week", "startTime": "0697-06-04T23:03:17Z"})
    assert billed.json()["metadata"]["query"]["startTime"] == "0697-05-31T00:00:00Z"
