"""runner: a config-driven experiment runner for the classic CNN papers."""

__version__ = "0.1.0"
