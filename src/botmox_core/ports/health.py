"""Health reports every backend returns from ``check_health()``."""

from __future__ import annotations

import attrs


@attrs.frozen
class HealthReport:
    """Outcome of one dependency check.

    Attributes:
        name: backend name (``sqlite``, ``localfs``, ``s3`` ...).
        ok: whether the dependency answered correctly.
        detail: a short human-readable explanation, never a secret.
        latency_ms: how long the check took.
    """

    name: str
    ok: bool
    detail: str | None = None
    latency_ms: float | None = None
