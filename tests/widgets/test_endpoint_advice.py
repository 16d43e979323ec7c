"""The endpoint view shows what preflight said at deploy time (warnings and notes) next to the
live diagnosis, in the live state and in the snapshot a saved notebook keeps."""

from __future__ import annotations

from support import deploy

from runpod_jupyter.deployment import Deployment
from runpod_jupyter.endpoints import delete_endpoint
from runpod_jupyter.findings import Finding
from runpod_jupyter.widgets import make_view, static_bundle

ADVICE = (
    Finding("warning", "no-volume", "Line 3 of the cell uses /runpod-volume but no network volume is attached.",
            "Attach a network volume."),
    Finding("info", "init-timeout", "Models load at start.", "Set RUNPOD_INIT_TIMEOUT."),
)


def test_the_endpoint_view_shows_the_deploy_advice(local_runpod, client, tmp_path, comms):
    spec, _ = deploy(client, tmp_path, "print('never started')\n", wait_idle=False, workers_max=0)
    dep = Deployment(name=spec.name, endpoint_id=spec.id, backend="local", settings=local_runpod.settings(),
                     findings=ADVICE)
    try:
        bundle = static_bundle(dep)
        for finding in ADVICE:
            assert f"{finding.level}: {finding.message}" in bundle["text/plain"]
            assert finding.fix in bundle["text/html"]
        view = make_view(dep)  # the live view: the state synced to the browser
        assert {"no-volume", "init-timeout"} <= {f["code"] for f in view.state["findings"]}
        assert ADVICE[0].message in view.static_text()
        view.close()
    finally:
        delete_endpoint(client, spec.id)


def test_notes_alone_are_not_problems():
    """Advice of level info sits below "No problems found."; a warning replaces that line."""
    from runpod_jupyter.widgets.snapshot import _findings_html

    note, warning = ({"level": f.level, "message": f.message, "fix": f.fix, "code": f.code} for f in reversed(ADVICE))
    assert "No problems found." in _findings_html([note])
    assert ADVICE[1].message in _findings_html([note])
    assert "No problems found." not in _findings_html([note, warning])
    assert "No problems found." in _findings_html([])
