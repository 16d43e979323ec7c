"""``/v2/billing/serverless``: what each endpoint was charged, in time buckets (UTC), from the
embedded RunPod's per-hour spend log. The window is ``startTime``/``endTime`` (default: the last
30 days up to now) or the ``lastN`` buckets ending with the current one, snapped to bucket
boundaries as RunPod's document says. Only GPU time is billed here: CPU, disk and platform fees
are 0. A record is written for each endpoint and bucket with a charge."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from ..engine import Engine
from .http import json_response, problem

BUCKETS = ("hour", "day", "week", "month", "year")
DEFAULT_DAYS = 30
ZERO = {"cpuAmount": 0.0, "diskAmount": 0.0, "feeAmount": 0.0}


def floor(moment: datetime, size: str) -> datetime:
    """The start of the ``size`` bucket holding ``moment`` (weeks start on Monday)."""
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if size == "hour":
        return moment
    moment = moment.replace(hour=0)
    if size == "week":
        return moment - timedelta(days=moment.weekday())
    if size == "month":
        return moment.replace(day=1)
    if size == "year":
        return moment.replace(month=1, day=1)
    return moment


def step(start: datetime, size: str, n: int = 1) -> datetime:
    """The bucket start ``n`` buckets after (negative: before) ``start``."""
    if size in ("hour", "day", "week"):
        return start + timedelta(**{f"{size}s": n})
    months = n * (12 if size == "year" else 1)
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def _iso(moment: datetime) -> str:
    """RFC 3339 in UTC; the year always four digits (strftime's %Y writes year 697 as "697")."""
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


def _parse(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise problem(400, f"{name} is not an RFC 3339 time: {text!r}.", hint="Send e.g. 2026-06-01T00:00:00Z.") from None
    if moment.tzinfo is None:
        raise problem(400, f"{name} has no time zone: {text!r}.", hint="End it with Z or an offset.")
    return moment


def window(request: web.Request, now: float) -> tuple[datetime, datetime, str]:
    """The query's resolved ``[start, end)`` and bucket size."""
    size = request.query.get("bucketSize", "day")
    if size not in BUCKETS:
        raise problem(400, f"Unknown bucketSize {size!r}.", hint=f"Use one of {', '.join(BUCKETS)}.")
    current = datetime.fromtimestamp(now, UTC)
    start, end = _parse(request, "startTime"), _parse(request, "endTime")
    if "lastN" in request.query:
        if start is not None or end is not None:
            raise problem(400, "lastN excludes startTime and endTime.", hint="Send lastN, or a startTime/endTime.")
        try:
            last = int(request.query["lastN"])
        except ValueError:
            last = 0
        if last < 1:
            raise problem(400, f"lastN must be a whole number of at least 1, not {request.query['lastN']!r}.",
                          hint="Send e.g. lastN=7&bucketSize=day.")
        head = floor(current, size)
        return step(head, size, 1 - last), step(head, size), size
    start = floor(start or current - timedelta(days=DEFAULT_DAYS), size)
    end = end or current
    snapped = floor(end, size)
    end = snapped if snapped == end.astimezone(UTC) else step(snapped, size)
    if end <= start:
        raise problem(400, "endTime is not after startTime.", hint="Send an endTime later than startTime.")
    return start, end, size


def history(engine: Engine, request: web.Request, now: float) -> dict[str, Any]:
    """The ``ListServerlessBillingResponse`` for ``request`` at ``now``."""
    try:
        start, end, size = window(request, now)
    except (OverflowError, ValueError):  # a window past year 1 or 9999
        raise problem(400, "The billing window lies outside the years 1 to 9999.",
                      hint="Send a smaller lastN, or times in this millennium.") from None
    only = request.query.get("serverlessId")
    sums: dict[tuple[datetime, str], float] = {}
    for spent in engine.billing.spend.between(start.timestamp(), end.timestamp()):
        if only is not None and spent.endpoint_id != only:
            continue
        key = (floor(datetime.fromtimestamp(spent.hour, UTC), size), spent.endpoint_id)
        sums[key] = sums.get(key, 0.0) + spent.amount
    records = [
        {"startTime": _iso(bucket), "endTime": _iso(step(bucket, size)), "serverlessId": endpoint_id,
         "totalAmount": round(amount, 6), "gpuAmount": round(amount, 6), **ZERO}
        for (bucket, endpoint_id), amount in sorted(sums.items())
    ]
    total = round(sum(sums.values()), 6)
    return {"records": records, "metadata": {
        "query": {"startTime": _iso(start), "endTime": _iso(end), "bucketSize": size, "serverlessId": only},
        "recordCount": len(records), "uniqueServerlessCount": len({e for _, e in sums}),
        "totals": {"totalAmount": total, "gpuAmount": total, **ZERO},
    }}


class BillingHistory:
    """The handler of ``/v2/billing/serverless``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def serverless(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise problem(405, f"{request.method} is not allowed on {request.path}.", hint="Use GET.")
        return json_response(history(self.engine, request, time.time()))
