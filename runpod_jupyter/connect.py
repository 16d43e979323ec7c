"""The one way a backend choice becomes connection settings.

Magics, deploys, handles, the sidebar's server extension and the CLI all call :func:`connect`;
only it decides whether the embedded RunPod may be started.
"""

from __future__ import annotations

from pathlib import Path

from . import embedded
from .config import Settings, choose_backend, cloud_settings
from .errors import ConfigError, MissingApiKeyError

LOCAL_NOT_RUNNING_HINT = (
    "Start it with `runpod-jupyter local serve`, from the Lab sidebar, or by deploying with --local."
)


def connect(
    backend: str | None = None,
    api_key: str | None = None,
    *,
    start: bool = True,
    state_file: Path | str | None = None,
) -> Settings:
    """Settings for ``backend`` (``--local``/``--cloud``, else the environment's choice).

    ``cloud`` needs a key (:class:`MissingApiKeyError` otherwise). ``local`` is the shared embedded
    RunPod: started when ``start`` is true and it is not running, else found or refused.
    """
    chosen = choose_backend(backend, api_key)
    if chosen == "cloud":
        settings = cloud_settings(api_key)
        if settings.api_key is None:
            raise MissingApiKeyError()
        return settings
    instance = embedded.start(state_file=state_file) if start else embedded.find(state_file)
    if instance is None:
        raise ConfigError("The embedded RunPod (local backend) is not running.", hint=LOCAL_NOT_RUNNING_HINT)
    return instance.settings()
