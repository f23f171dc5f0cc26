"""Whether Prometheus metrics can be served here, asked before importing them."""

from __future__ import annotations

import importlib.util


def missing_metrics_extra(what: str) -> str | None:
    """Why ``what`` cannot serve metrics here (None: it can)."""
    if importlib.util.find_spec("prometheus_client") is not None:
        return None
    return f"{what} needs prometheus-client: pip install 'que-pg[metrics]'"
