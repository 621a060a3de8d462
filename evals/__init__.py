"""``ssrl-eval``: the sim-to-real experiment — a QA set through the service in several search modes.

A tool beside ``bench/`` and ``train/``: it talks to the service through the SDK (``ssrl_client``),
over HTTP or in-process (``service.app.in_process``); the service imports nothing of it."""
