"""The jupyter_server extension behind the Lab sidebar: authenticated JSON routes under
``{base_url}/runpod-jupyter/api/``. Keys stay here; the browser sees only what the panel shows.

Imported by jupyter_server only (``runpod_jupyter._jupyter_server_extension_points``), so the
package itself stays light for kernels. Settings, e.g. in ``jupyter_server_config.py``::

    c.RunpodSidebar.overview_ttl = 2.0       # seconds several tabs share one overview
    c.RunpodSidebar.local_state_file = ""    # where to find the embedded RunPod ("" = runtime dir)
"""

from __future__ import annotations

from typing import Any

from traitlets import Float, Int, Unicode
from traitlets.config import Configurable


class RunpodSidebar(Configurable):
    """Configuration of the sidebar's server side."""

    overview_ttl = Float(2.0, help="Seconds a overview is reused, so open tabs share one collection.").tag(config=True)
    request_timeout = Float(10.0, help="Seconds to wait for RunPod on each request.").tag(config=True)
    recent_jobs = Int(30, help="How many journal jobs the overview lists.").tag(config=True)
    local_state_file = Unicode(
        "", help="The embedded RunPod's state file; empty for the default in Jupyter's runtime dir."
    ).tag(config=True)


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers; nothing talks to RunPod until the panel asks."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from . import overview
    from .backends import Backends
    from .handlers import Service, setup_handlers

    options = RunpodSidebar(parent=server_app)
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="runpod-sidebar")
    fanout = ThreadPoolExecutor(max_workers=8, thread_name_prefix="runpod-sidebar-fanout")
    backends = Backends(local_state_file=options.local_state_file, timeout=options.request_timeout)

    async def produce() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: overview.collect(backends, fanout, recent_jobs=options.recent_jobs))

    service = Service(backends, executor, fanout, overview.OverviewCache(produce, options.overview_ttl))
    setup_handlers(server_app.web_app, service)
    server_app.log.info("runpod-jupyter: sidebar API at %srunpod-jupyter/api/", server_app.web_app.settings["base_url"])
