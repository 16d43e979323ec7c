"""Fixtures for deploying through the magics: one IPython shell per module, and a client of the
shared embedded RunPod its deploys start."""

from __future__ import annotations

import pytest
from IPython.core.getipython import get_ipython
from IPython.testing.globalipapp import start_ipython

from runpod_jupyter import embedded
from runpod_jupyter.api import Client


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython() or get_ipython()  # None when another module started it first
    shell.run_line_magic("load_ext", "runpod_jupyter")
    yield shell
    embedded.stop()  # the shared instance the deploys started


@pytest.fixture()
def api(ip):
    with Client(embedded.start().settings()) as client:
        yield client
