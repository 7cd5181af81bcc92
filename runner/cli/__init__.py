"""Entry points: `runner` (main), `runner --plan` (plan), `runner-eval` (evaluate). They parse a command,
run the pre-flight (runner/run/preflight.py) and hand over to the run layer."""
