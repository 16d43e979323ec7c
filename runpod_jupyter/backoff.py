"""How long to wait before trying a request again: one policy for every HTTP client here.

The RunPod clients (``api/_wire.py``) and the OCI registry client (``image/registry.py``) both
back off exponentially and honour ``Retry-After``; they differ only in their numbers, which are
the fields of :class:`RetryPolicy`. A bottom module (standard library only), so the image
package can use it without importing the RunPod API client.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from datetime import timezone


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and delays for one client; callers decide *what* is retried, this says *when*."""

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    #: Longest Retry-After honoured. The RunPod clients give up (RateLimitedError) beyond it;
    #: :meth:`delay` never waits longer than it.
    max_retry_after: float = 60.0
    #: Scale each backoff by a random 0.5–1.0, so clients that failed together do not retry
    #: together.
    jitter: bool = True

    def backoff(self, attempt: int) -> float:
        """Exponential delay after failed ``attempt`` (0-based), capped at ``max_delay``."""
        delay = min(self.max_delay, self.base_delay * (2**attempt))
        return delay * (0.5 + random.random() / 2) if self.jitter else delay

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before the next attempt: the server's Retry-After when it sent one (capped at
        ``max_retry_after``), else :meth:`backoff`."""
        if retry_after is None:
            return self.backoff(attempt)
        return min(retry_after, self.max_retry_after)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (delta-seconds or an HTTP date) in seconds from now, never
    negative; None when absent or unreadable, so the caller falls back to backoff."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # "-0000": UTC with no stated local zone
        parsed = parsed.replace(tzinfo=timezone.utc)
    return max(0.0, parsed.timestamp() - time.time())
