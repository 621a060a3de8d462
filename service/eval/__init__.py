"""``ssrl-eval``: the sim-to-real experiment — a QA set through the service in several search modes."""
