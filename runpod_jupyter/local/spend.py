"""What each endpoint was charged, per hour (UTC), kept in the store: enough for REST v2's
``/v2/billing/serverless`` history at any of its bucket sizes (an hour is the smallest), and small
(one row per endpoint and hour it was billed in, however many charges fell in it)."""

from __future__ import annotations

from dataclasses import dataclass

from .store import Store

HOUR = 3600


@dataclass(frozen=True)
class Spent:
    """``amount`` USD charged to ``endpoint_id`` in the hour starting at ``hour`` (epoch seconds)."""

    endpoint_id: str
    hour: int
    amount: float


class SpendLog:
    """Charges summed per endpoint and hour, written through to the store's ``spend`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hours: dict[tuple[str, int], float] = {
            (row["endpointId"], int(row["hour"])): float(row["amount"]) for row in store.rows("spend")
        }

    def record(self, endpoint_id: str, when: float, amount: float) -> None:
        """Add a charge made at ``when`` (epoch seconds) to its hour."""
        key = (endpoint_id, int(when // HOUR) * HOUR)
        self.hours[key] = self.hours.get(key, 0.0) + amount
        self.store.put("spend", f"{key[0]}@{key[1]}",
                       {"endpointId": key[0], "hour": key[1], "amount": self.hours[key]})

    def between(self, start: float, end: float) -> list[Spent]:
        """The hours in ``[start, end)``, oldest first."""
        return sorted(
            (Spent(ep, hour, amount) for (ep, hour), amount in self.hours.items() if start <= hour < end),
            key=lambda s: (s.hour, s.endpoint_id),
        )
