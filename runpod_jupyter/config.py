"""Settings and credentials: what the environment and the SDK's files say. Starts nothing.

Everything that decides *where* a request goes and *with which key* is read here, so that the
API client, the magics, the CLI and the server extension all agree. The key is held in a
:class:`~runpod_jupyter.secret.Secret`. :func:`runpod_jupyter.connect.connect` turns a backend
choice into :class:`Settings`, starting the embedded RunPod only when asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import ConfigError
from .secret import Secret

Backend = Literal["local", "cloud"]

CLOUD_REST_BASE = "https://api.runpod.ai/v2"
CLOUD_GRAPHQL_BASE = "https://api.runpod.io"

def data_dir() -> Path:
    """Where the job journal, the embedded RunPod's database and caches live."""
    override = os.environ.get("RUNPOD_JUPYTER_DATA_DIR")
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("runpod-jupyter", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runtime_dir() -> Path:
    """Jupyter's runtime dir: the embedded RunPod's state file lives here, shared by kernels."""
    from jupyter_core.paths import jupyter_runtime_dir

    path = Path(jupyter_runtime_dir())
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sdk_config_path() -> Path:
    return Path.home() / ".runpod" / "config.toml"


def _key_from_sdk_config(path: Path) -> str | None:
    """Read ``[default] api_key`` (or a bare ``api_key``) from the SDK's config.toml."""
    if not path.is_file():
        return None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return None
    profile = data.get("default", data)
    key = profile.get("api_key") if isinstance(profile, dict) else None
    return key if isinstance(key, str) and key else None


@dataclass(frozen=True)
class CloudCredentials:
    """The RunPod key for the cloud, and where it came from (for `doctor`, never the key)."""

    api_key: Secret | None
    source: str


def cloud_credentials(api_key: str | None = None) -> CloudCredentials:
    """Explicit argument > ``RUNPOD_API_KEY`` > ``~/.runpod/config.toml`` (the SDK's file)."""
    if api_key:
        return CloudCredentials(Secret(api_key), "argument")
    env = os.environ.get("RUNPOD_API_KEY")
    if env:
        return CloudCredentials(Secret(env), "RUNPOD_API_KEY")
    path = _sdk_config_path()
    from_file = _key_from_sdk_config(path)
    if from_file:
        return CloudCredentials(Secret(from_file), "~/.runpod/config.toml")
    return CloudCredentials(None, "none")


#: The backend ``%runpod_config backend`` chooses for this kernel.
BACKEND_ENV = "RUNPOD_JUPYTER_BACKEND"


def choose_backend(explicit: str | None = None, api_key: str | None = None) -> Backend:
    """``--local``/``--cloud`` > ``RUNPOD_JUPYTER_BACKEND`` > cloud if a key is configured, else local."""
    choice = explicit or os.environ.get(BACKEND_ENV) or ""
    choice = choice.strip().lower()
    if choice in ("local", "cloud"):
        return choice  # type: ignore[return-value]
    if choice:
        raise ConfigError(
            f"Unknown backend {choice!r}. Use 'local' (the embedded RunPod) or 'cloud' "
            f"(set {BACKEND_ENV}, or pass --local / --cloud)."
        )
    return "cloud" if cloud_credentials(api_key).api_key else "local"


#: Where cloud deploys push images, as ``%runpod_config registry`` sets it.
REGISTRY_ENV = "RUNPOD_JUPYTER_REGISTRY"


def push_registry(explicit: str | None = None) -> str | None:
    """Where cloud deploys push images: ``--registry`` > ``RUNPOD_JUPYTER_REGISTRY`` (what
    ``%runpod_config registry`` sets) > none (a cloud deploy then says how to set one)."""
    return (explicit or "").strip() or os.environ.get(REGISTRY_ENV, "").strip() or None


@dataclass(frozen=True)
class Settings:
    """Where to send REST and GraphQL requests, and with which key."""

    backend: Backend
    rest_base: str
    graphql_url: str
    api_key: Secret | None = field(repr=False)
    key_source: str = "none"

    @property
    def manage_base(self) -> str:
        """REST API v2's root for management (``https://api.runpod.io/v2``): beside ``/graphql``."""
        return self.graphql_url.removesuffix("/graphql") + "/v2"

    @property
    def local_url(self) -> str | None:
        """The embedded RunPod's root URL (its local-only routes live there); None for the cloud."""
        return self.rest_base.removesuffix("/v2") if self.backend == "local" else None

    def __repr__(self) -> str:
        return (
            f"Settings(backend={self.backend!r}, rest_base={self.rest_base!r}, "
            f"graphql_url={self.graphql_url!r}, key_source={self.key_source!r})"
        )


def cloud_settings(api_key: str | None = None) -> Settings:
    """Settings for api.runpod.ai / api.runpod.io, honouring the SDK's base-URL variables."""
    creds = cloud_credentials(api_key)
    rest = os.environ.get("RUNPOD_ENDPOINT_BASE_URL") or CLOUD_REST_BASE
    gql = os.environ.get("RUNPOD_API_BASE_URL") or CLOUD_GRAPHQL_BASE
    return Settings(
        backend="cloud",
        rest_base=rest.rstrip("/"),
        graphql_url=gql.rstrip("/") + "/graphql",
        api_key=creds.api_key,
        key_source=creds.source,
    )
