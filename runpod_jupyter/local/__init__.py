"""The embedded RunPod (``local`` backend): a control plane that speaks RunPod's wire, with real
``runpod`` SDK workers as subprocesses. It runs as its own process (:mod:`.server`); find, start
and stop it with :mod:`runpod_jupyter.embedded`.
"""
