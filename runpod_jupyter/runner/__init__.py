"""Run a notebook cell, or one call of a notebook function, on a warm runner worker.

``pack_cell`` / ``pack_call`` turn code and the notebook values it reads into a job's input
(refusing by name what cannot travel; ``packed_*`` also tell the modules shipped, which
``requirements_for`` pins for a cloud runner's image); :data:`HANDLER_FILE` is the worker's handler, deployed as
the runner endpoint; ``read_event`` turns each streamed chunk back into an :data:`Event`. The
runner endpoint's lifecycle, the magic and the display live in the deploy and front layers.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from .events import Display, Done, Event, Failed, Output, read_event
from .shipping import Packed, pack_call, pack_cell, packed_call, packed_cell, requirements_for
from .wire import DEFAULT_BUDGET, FORMAT, RETURN_BUDGET

#: The self-contained worker handler (stdlib, cloudpickle and runpod only), deployed as the
#: runner endpoint's handler.py.
HANDLER_FILE: Path = Path(__file__).with_name("worker_handler.py")
#: What the runner image needs beyond what the cells import: the kernel's cloudpickle.
RUNNER_REQUIREMENTS: tuple[str, ...] = (f"cloudpickle=={importlib.metadata.version('cloudpickle')}",)

__all__ = [
    "HANDLER_FILE", "RUNNER_REQUIREMENTS", "DEFAULT_BUDGET", "RETURN_BUDGET", "FORMAT", "pack_cell", "pack_call",
    "Packed", "packed_cell", "packed_call", "requirements_for", "read_event", "Output", "Display", "Done", "Failed", "Event",
]
