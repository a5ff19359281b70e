"""Vigil's application shell: settings, sources, the scan cycle, delivery, daemon, CLI and web."""

__version__ = "0.1.0"
