"""A second client on a kernel's IOPub channel: it sees every message a browser would (widget
comm traffic included), whichever cell they belong to. Tests and the benchmark read widget
states from it instead of trusting the kernel's own account."""

from __future__ import annotations

import queue
import threading
from typing import Any

from jupyter_client import BlockingKernelClient


class IOPubTap:
    """Collects IOPub messages in a background thread until :meth:`close`."""

    def __init__(self, connection_file: str) -> None:
        self.client = BlockingKernelClient()
        self.client.load_connection_file(connection_file)
        self.client.start_channels(shell=False, iopub=True, stdin=False, hb=False, control=False)
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.client.get_iopub_msg(timeout=0.2))
            except queue.Empty:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.stop_channels()

    def comm_messages(self) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m["msg_type"] in ("comm_open", "comm_msg")]

    def widgets(self, class_name: str) -> list[str]:
        """Comm ids of the anywidget views of one class (e.g. ``EndpointView``), in order."""
        return [
            m["content"]["comm_id"] for m in self.comm_messages()
            if m["msg_type"] == "comm_open"
            and str(m["content"]["data"]["state"].get("_anywidget_id", "")).endswith("." + class_name)
        ]

    def values(self, comm_id: str, trait: str) -> list[Any]:
        """Every value the browser was sent for ``trait`` of one widget, in order."""
        out = []
        for m in self.comm_messages():
            content = m["content"]
            if content["comm_id"] != comm_id:
                continue
            data = content["data"]
            state = data.get("state") if m["msg_type"] == "comm_open" or data.get("method") == "update" else None
            if state and trait in state:
                out.append(state[trait])
        return out

    def sent_times(self, comm_id: str) -> list[float]:
        """When the kernel sent each ``comm_msg`` of one widget (its header's date), in order."""
        return sorted(m["header"]["date"].timestamp() for m in self.comm_messages()
                      if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id)

    def comm_msg_count(self, comm_id: str | None = None) -> int:
        return sum(1 for m in self.comm_messages()
                   if m["msg_type"] == "comm_msg" and (comm_id is None or m["content"]["comm_id"] == comm_id))
