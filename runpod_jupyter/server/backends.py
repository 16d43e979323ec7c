"""Which backends the sidebar can see, and a client for each, kept on the server.

``local`` is the embedded RunPod found through its state file (it is never started behind the
user's back: only the explicit "start" action does that); ``cloud`` is RunPod itself when a key
is configured. Clients are reused while their settings stay the same, so a poll does not open a
new connection pool each time. Keys live in :class:`~runpod_jupyter.secret.Secret` objects and
never leave this module except inside an ``Authorization`` header.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .. import config, embedded
from ..api import Client, RetryPolicy
from ..connect import connect
from ..embedded import LocalInstance
from ..errors import ConfigError, MissingApiKeyError
from .errors import bad_request, conflict

BACKENDS = ("local", "cloud")
#: The sidebar is interactive: fail fast and show it, rather than retry for half a minute.
SIDEBAR_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, max_retry_after=5.0)


def check_backend(name: str | None) -> str:
    if name not in BACKENDS:
        raise bad_request(f"Unknown backend {name!r}.", hint="Use 'local' or 'cloud'.")
    return name


class Backends:
    """Find the embedded RunPod, resolve cloud settings, hand out clients."""

    def __init__(self, *, local_state_file: str = "", timeout: float = 10.0) -> None:
        self._state_file = Path(local_state_file) if local_state_file else None
        self._timeout = timeout
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[tuple[Any, ...], Client]] = {}

    # -- local ---------------------------------------------------------------------------------
    def local_instance(self) -> LocalInstance | None:
        return embedded.find(self._state_file)

    def start_local(self) -> tuple[LocalInstance, bool]:
        """Start the shared embedded RunPod unless it runs; returns it and whether it was started."""
        found = self.local_instance()
        if found is not None:
            return found, False
        return embedded.start(state_file=self._state_file), True

    def require_local(self) -> LocalInstance:
        found = self.local_instance()
        if found is None:
            raise conflict(
                "The embedded RunPod (local backend) is not running.",
                hint="Start it from the sidebar, with `runpod-jupyter local serve`, or by deploying with --local.",
            )
        return found

    # -- cloud ---------------------------------------------------------------------------------
    @staticmethod
    def cloud_configured() -> bool:
        return config.cloud_credentials().api_key is not None

    # -- clients -------------------------------------------------------------------------------
    def settings(self, backend: str) -> config.Settings:
        """Settings for a backend that is available (never starting the embedded RunPod: only the
        explicit start action does that); 409 when it is not."""
        try:
            return connect(backend, start=False, state_file=self._state_file)
        except MissingApiKeyError:
            raise conflict(
                "No RunPod API key is configured, so the cloud backend is off.",
                hint="Set RUNPOD_API_KEY (or ~/.runpod/config.toml) in the environment Jupyter runs in, then restart it.",
            ) from None
        except ConfigError as exc:
            raise conflict(exc.message, hint=exc.hint) from None

    def client(self, backend: str, settings: config.Settings | None = None) -> Client:
        settings = settings or self.settings(check_backend(backend))
        identity = (settings.rest_base, settings.graphql_url, settings.api_key)
        with self._lock:
            cached = self._clients.get(backend)
            if cached is not None and cached[0] == identity:
                return cached[1]
            client = Client(settings, retry=SIDEBAR_RETRY, timeout=self._timeout)
            self._clients[backend] = (identity, client)
        if cached is not None:
            cached[1].close()
        return client
