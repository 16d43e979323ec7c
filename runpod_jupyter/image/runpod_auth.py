"""Let RunPod pull a private worker image: register the registry login with RunPod once and
reference it from the template's ``containerRegistryAuthId``.

The credentials go to RunPod's GraphQL API (``saveRegistryAuth``) and nowhere else: never into the
image, the template's env, or ``dockerArgs``. An existing entry with the same name is reused
(``myself { containerRegistryCreds }``), so redeploying does not pile up copies, and its credentials
are replaced with the current ones (``updateRegistryAuth``): RunPod never shows a stored password,
so a rotated token could not be noticed otherwise, and workers would fail to pull.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import RegistryAuthError
from ..secret import Secret
from .auth import Credentials, credentials_from, find_credentials, login_hint
from .reference import ImageRef


def registry_auth_name(registry: str, username: str) -> str:
    """A stable, readable name for one registry login: ``runpod-jupyter docker.io alice``."""
    clean = re.sub(r"[^A-Za-z0-9._:@-]+", "-", f"{registry} {username}").strip("-")
    return f"runpod-jupyter {clean}".replace(" ", "-")


def ensure_registry_auth(
    client: Any,
    image: str,
    *,
    username: str | None = None,
    password: str | Secret | None = None,
    credentials: Credentials | None = None,
    name: str | None = None,
) -> str:
    """Return the id of a RunPod registry auth able to pull ``image``, creating it if needed.

    ``client`` is a :class:`runpod_jupyter.api.Client`. Credentials are found as for a push
    (arguments, environment, ``~/.docker/config.json``).
    """
    registry = ImageRef.parse(image).registry
    creds = credentials or credentials_from(username, password) or find_credentials(registry, target=True)
    if creds is None or creds.password is None:
        raise RegistryAuthError(
            f"No credentials were found for {registry}, so RunPod could not be allowed to pull {image}.",
            hint=login_hint(registry) + " Or make the repository public.",
        )
    label = name or registry_auth_name(registry, creds.username)
    for existing in client.list_registry_auths():
        if existing.name == label:
            client.update_registry_auth(existing.id, creds.username, creds.password.reveal())
            return existing.id
    saved = client.save_registry_auth(label, creds.username, creds.password.reveal())
    return saved.id
