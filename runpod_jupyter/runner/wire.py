"""The runner's wire format, kept in one place (the worker handler repeats these constants; a test
checks that both agree).

A job's input is one JSON object::

    {"kind": "runpod_jupyter.runner.cell" | "runpod_jupyter.runner.call", "format": 1,
     "versions": {"python": "3.11", "cloudpickle": "3.1.1", "packages": {"numpy": "2.1.0"}},
     "imports": [{"name": "np", "module": "numpy", "qualname": null}, ...],   # redone remotely
     "values": "<base64 cloudpickle of {name: value}>" | null,
     "sources": {"<filename>": "<source>"},        # for tracebacks through notebook functions
     # a cell:  "code", "filename", "first_line", "binds", "out", "silent"
     # a call:  "function", "arguments"                 (base64 cloudpickles)
    }

Each chunk the worker yields is a JSON object with ``kind`` and ``format``: ``output`` (``name``,
``text``), ``display`` (``data``, ``metadata``), and last ``done`` (``worker_id``, ``versions``,
``imports``, ``values`` {name: base64}, ``needs`` {name: [distribution]}, ``refused``,
``result``, ``value``) or ``failed`` (``error_type``, ``message``, ``traceback``, ``worker_id``).
"""

from __future__ import annotations

FORMAT = 1
KIND_CELL = "runpod_jupyter.runner.cell"
KIND_CALL = "runpod_jupyter.runner.call"

#: The JSON size a job's input may reach: RunPod's /run takes at most 10 MB of body (this leaves
#: room for the envelope). Pickles travel as base64, so they grow by 4/3 on the way.
DEFAULT_BUDGET = 9_500_000
#: The most the values coming back may weigh in the last chunk (base64 included).
RETURN_BUDGET = 8_000_000
