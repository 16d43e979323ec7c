"""Registry credentials and the login dance, as docker does them.

Where credentials come from, first match wins: arguments, then the environment
(``RUNPOD_JUPYTER_REGISTRY_USERNAME`` / ``RUNPOD_JUPYTER_REGISTRY_PASSWORD``, for the push target or
for the host named in ``RUNPOD_JUPYTER_REGISTRY``), then ``~/.docker/config.json`` (or
``$DOCKER_CONFIG/config.json``): ``credHelpers``, ``credsStore`` (``docker-credential-<name> get``),
then ``auths``.

How they are used depends on what the registry asks for in ``WWW-Authenticate``: nothing
(anonymous), ``Basic`` (the password on every request) or ``Bearer`` (the distribution token flow:
``GET realm?service=…&scope=…`` with Basic credentials, one token carrying every scope the push needs,
so that a cross-repository mount is allowed). Passwords and tokens are held in
:class:`~runpod_jupyter.secret.Secret` and registered with the redactor; none is ever formatted into
a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..config import REGISTRY_ENV
from ..errors import RegistryAuthError, RegistryError, RegistryUnreachableError
from ..secret import Secret, register_secret
from .reference import DOCKER_HUB, canonical_registry, is_loopback

ENV_USERNAME = "RUNPOD_JUPYTER_REGISTRY_USERNAME"
ENV_PASSWORD = "RUNPOD_JUPYTER_REGISTRY_PASSWORD"
HELPER_TIMEOUT_S = 20.0
_HUB_SERVER_URL = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    """A user name and a password (or access token) for one registry, and where they came from."""

    username: str
    password: Secret | None = field(default=None, repr=False)
    identity_token: Secret | None = field(default=None, repr=False)
    source: str = "argument"

    def basic(self) -> str:
        """The value of a Basic ``Authorization`` header."""
        secret = self.password.reveal() if self.password else ""
        raw = f"{self.username}:{secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def credentials_from(
    username: str | None, password: str | Secret | None, source: str = "argument"
) -> Credentials | None:
    """Wrap a user name and password into :class:`Credentials` (None when either is missing)."""
    if not username or not password:
        return None
    secret = password if isinstance(password, Secret) else Secret(password)
    return Credentials(username=username, password=secret, source=source)


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    env = os.environ if env is None else env
    base = env.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def find_credentials(
    registry: str,
    username: str | None = None,
    password: str | Secret | None = None,
    *,
    target: bool = True,
    env: Mapping[str, str] | None = None,
    docker_config: Path | None = None,
) -> Credentials | None:
    """Credentials for ``registry`` (``docker.io``, ``ghcr.io``, ``host:port``) or None (anonymous).

    ``target`` says the registry is the push target, for which the environment variables apply
    even when ``RUNPOD_JUPYTER_REGISTRY`` does not name it.
    """
    registry = canonical_registry(registry)
    explicit = credentials_from(username, password)
    if explicit:
        return explicit
    env = os.environ if env is None else env
    env_user, env_password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    env_registry = env.get(REGISTRY_ENV)
    applies = canonical_registry(env_registry) == registry if env_registry else target
    if env_user and env_password and applies:
        return credentials_from(env_user, env_password, source=ENV_USERNAME)
    path = docker_config or docker_config_path(env)
    return _from_docker_config(registry, path)


def _from_docker_config(registry: str, path: Path) -> Credentials | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    helpers = data.get("credHelpers") or {}
    helper = None
    for key, name in helpers.items() if isinstance(helpers, dict) else ():
        if canonical_registry(str(key)) == registry:
            helper = name
    helper = helper or data.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, registry)
        if found:
            return found
    auths = data.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if canonical_registry(str(key)) != registry or not isinstance(entry, dict):
            continue
        found = _from_auth_entry(entry, f"{path} (auths)")
        if found:
            return found
    return None


def _from_auth_entry(entry: dict, source: str) -> Credentials | None:
    user, password = entry.get("username"), entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(username=user or "<token>", identity_token=Secret(token), source=source)
    if user and password:
        return Credentials(username=user, password=Secret(password), source=source)
    return None


def _from_helper(name: str, registry: str) -> Credentials | None:
    """``docker-credential-<name> get`` with the server URL on stdin; None when it has nothing."""
    exe = shutil.which(f"docker-credential-{name}")
    if not exe:
        return None
    server = _HUB_SERVER_URL if registry == DOCKER_HUB else registry
    try:
        proc = subprocess.run(
            [exe, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return None
    user, secret = data.get("Username"), data.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    source = f"docker-credential-{name}"
    if user == "<token>":
        return Credentials(username=user, identity_token=Secret(secret), source=source)
    return Credentials(username=str(user or ""), password=Secret(secret), source=source)


# -- WWW-Authenticate --------------------------------------------------------------------------
_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="…",service="…",scope="a:b:pull,push"`` → Challenge (quoted commas kept)."""
    header = (header or "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {}
    for key, value in _PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return Challenge(scheme=scheme.lower(), params=params)


def _plain_http_to_remote(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.netloc)


class Authenticator:
    """Answers a registry's challenges for one registry host; keeps the current header."""

    def __init__(self, registry: str, credentials: Credentials | None, scopes: list[str]) -> None:
        self.registry = registry
        self.credentials = credentials
        self.scopes = list(dict.fromkeys(scopes))
        self._header: str | None = None
        self._expires_at = float("inf")
        self.token_requests = 0

    def __repr__(self) -> str:
        who = self.credentials.username if self.credentials else "anonymous"
        return f"Authenticator(registry={self.registry!r}, user={who!r}, scopes={self.scopes!r})"

    @property
    def who(self) -> str:
        return f"user {self.credentials.username!r}" if self.credentials else "anonymous access"

    def header(self) -> dict[str, str]:
        """The Authorization header to send now (empty when anonymous or not yet challenged)."""
        return {"Authorization": self._header} if self._header else {}

    def expired(self) -> bool:
        return self._header is not None and time.monotonic() >= self._expires_at

    def add_scopes(self, scopes: list[str]) -> None:
        for scope in scopes:
            if scope not in self.scopes:
                self.scopes.append(scope)

    def answer(self, http: httpx.Client, www_authenticate: str, request_url: str) -> bool:
        """Obtain credentials for a challenge; False when there is nothing better to send."""
        challenge = parse_challenge(www_authenticate)
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            if self.credentials is None:
                return False
            if self.credentials.password is None:
                raise RegistryAuthError(
                    f"{self.registry} wants a password, but only an identity token was found.",
                    status=401,
                    hint=f"Run `docker login {self.registry}` with a user name and password or access token.",
                )
            if _plain_http_to_remote(request_url):
                raise RegistryAuthError(
                    f"Refusing to send the password for {self.registry} over plain HTTP.",
                    hint="Use the registry's https:// address.",
                )
            self._header = self.credentials.basic()
            self._expires_at = float("inf")
            return True
        if challenge.scheme == "bearer":
            extra = challenge.params.get("scope", "").split()
            self.add_scopes(extra)
            token, lifetime = self._fetch_token(http, challenge.params)
            self._header = f"Bearer {token.reveal()}"
            self._expires_at = time.monotonic() + max(lifetime - 10.0, 5.0)
            return True
        return False

    def _fetch_token(self, http: httpx.Client, params: dict[str, str]) -> tuple[Secret, float]:
        realm = params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(
                f"{self.registry} asked for a token but gave no usable token service address.",
                hint="This registry's authentication is not the docker token flow; try builder='docker'.",
            )
        creds = self.credentials
        if creds and _plain_http_to_remote(realm):
            raise RegistryAuthError(
                f"Refusing to send the credentials for {self.registry} to a plain-HTTP token service.",
                hint="The registry's token realm must be https://, or the registry must be on this machine.",
            )
        self.token_requests += 1
        service = params.get("service")
        try:
            if creds and creds.identity_token is not None:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token.reveal(),
                        "client_id": "runpod-jupyter", "scope": " ".join(self.scopes)}
                if service:
                    form["service"] = service
                reply = http.post(realm, data=form)
            else:
                query: list[tuple[str, str | int | float | bool | None]] = [("service", service)] if service else []
                query += [("scope", scope) for scope in self.scopes]
                if creds:
                    query.append(("account", creds.username))
                headers = {"Authorization": creds.basic()} if creds else {}
                reply = http.get(realm, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnreachableError(
                f"Could not reach the token service of {self.registry} ({urlsplit(realm).netloc}): "
                f"{type(exc).__name__}.",
                hint="Check the network connection and the registry address.",
            ) from None
        if reply.status_code in (401, 403):
            if creds:
                raise RegistryAuthError(
                    f"{self.registry} refused the password for user {creds.username!r} "
                    f"(token service answered {reply.status_code}; credentials from {creds.source}).",
                    status=reply.status_code,
                    hint=(
                        "Check the user name and password. Docker Hub and GHCR want a personal access "
                        "token as the password (GHCR: a classic token with write:packages)."
                    ),
                )
            raise RegistryAuthError(
                f"{self.registry} does not allow anonymous access (token service answered {reply.status_code}).",
                status=reply.status_code,
                hint=_login_hint(self.registry),
            )
        if reply.status_code >= 400:
            raise RegistryError(
                f"The token service of {self.registry} failed with HTTP {reply.status_code}.",
                status=reply.status_code,
                hint="Try again in a minute; if it persists, check the registry's status page.",
            )
        try:
            payload = reply.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        value = payload.get("token") or payload.get("access_token")
        if not isinstance(value, str) or not value:
            raise RegistryError(
                f"The token service of {self.registry} answered without a token.",
                hint="The registry's token service is not the docker token flow; try builder='docker'.",
            )
        register_secret(value)
        try:
            lifetime = float(payload.get("expires_in") or 60)
        except (TypeError, ValueError):
            lifetime = 60.0
        return Secret(value), lifetime


def _login_hint(registry: str) -> str:
    return (
        f"Pass username= and password= (an access token works), set {ENV_USERNAME} and "
        f"{ENV_PASSWORD}, or run `docker login {registry}`."
    )


def login_hint(registry: str) -> str:
    """What to tell a user who has no credentials for ``registry``."""
    return _login_hint(registry)
