"""The two rules a name given to a deploy must follow, each written once.

* An **endpoint name** is what RunPod accepts: a letter, then letters, digits, '-' or '_', at most
  40 characters. Deploys, the CLI and packaging all check it here, so a name refused by one is
  refused by all, with the same words.
* A **variable name** is what ``%%runpod_deploy NAME`` binds the Deployment to: a Python
  identifier that is not a keyword.

Sits at the bottom of the package next to :mod:`runpod_jupyter.errors`, its only import.
"""

from __future__ import annotations

import keyword
import re

from .errors import DeployError, RunpodError

ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
ENDPOINT_NAME_HINT = "Use a letter first, then letters, digits, '-' or '_' (at most 40 characters), e.g. 'echo_v2'."
VARIABLE_NAME_HINT = (
    "%%runpod_deploy binds the Deployment to a Python variable of this name: use letters, digits "
    "and '_', not a digit first and not a keyword (e.g. 'echo_v2' rather than 'echo-v2')."
)


def check_endpoint_name(name: object, *, error: type[RunpodError] = DeployError) -> str:
    """Return ``name`` if RunPod accepts it as an endpoint name, else raise ``error``.

    ``error`` lets each layer raise from its own branch of the tree (packaging raises a
    ``PackagingError``); the message and hint are the same everywhere.
    """
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise error(f"Invalid endpoint name {name!r}.", hint=ENDPOINT_NAME_HINT)
    return name


def check_variable_name(name: object, *, error: type[RunpodError] = DeployError) -> str:
    """Return ``name`` if it can be a Python variable (the magic binds one), else raise ``error``."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise error(f"Invalid variable name {name!r}.", hint=VARIABLE_NAME_HINT)
    return name
