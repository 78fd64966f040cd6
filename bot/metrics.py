"""Process metrics in the Prometheus text exposition format (no client library needed)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True)) + "}"


@dataclass
class Counter:
    """A monotonically increasing count, optionally split by labels."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    _values: dict[tuple[str, ...], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inc(self, *labels: str, by: float = 1.0) -> None:
        """Add `by` to the series named by `labels`."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + by

    def value(self, *labels: str) -> float:
        """The current value of one series."""
        return self._values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {value:g}"


@dataclass
class Histogram:
    """Observed durations in seconds, in cumulative buckets."""

    name: str
    help: str
    buckets: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
    _counts: list[int] = field(default_factory=list)
    _sum: float = 0.0
    _total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, seconds: float) -> None:
        """Record one observation."""
        with self._lock:
            if not self._counts:
                self._counts = [0] * len(self.buckets)
            for index, bound in enumerate(self.buckets):
                if seconds <= bound:
                    self._counts[index] += 1
            self._sum += seconds
            self._total += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        counts = self._counts or [0] * len(self.buckets)
        for bound, count in zip(self.buckets, counts, strict=True):
            yield f'{self.name}_bucket{{le="{bound:g}"}} {count}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self._total}'
        yield f"{self.name}_sum {self._sum:g}"
        yield f"{self.name}_count {self._total}"


@dataclass
class Gauge:
    """A value read when scraped."""

    name: str
    help: str
    read: Callable[[], float]

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {self.read():g}"


class Metrics:
    """Every metric the service exposes on /metrics."""

    def __init__(self) -> None:
        self.events_ingested = Counter(
            "escalations_events_ingested_total", "Events stored, by platform.", ("platform",)
        )
        self.events_duplicate = Counter(
            "escalations_events_duplicate_total", "Retried events ignored (already stored)."
        )
        self.webhooks_rejected = Counter(
            "escalations_webhooks_rejected_total",
            "Webhook posts refused, by platform and status.",
            ("platform", "status"),
        )
        self.escalations_opened = Counter(
            "escalations_opened_total", "Escalations opened, by level.", ("level",)
        )
        self.deliveries = Counter(
            "escalations_deliveries_total",
            "Outbox deliveries, by surface, kind and outcome.",
            ("surface", "kind", "outcome"),
        )
        self.delivery_latency = Histogram(
            "escalations_delivery_latency_seconds",
            "From an outbox row's creation to its successful delivery.",
        )
        self.rules_reloads = Counter(
            "escalations_rules_reloads_total", "Rules reload attempts, by result.", ("result",)
        )
        self.gauges: list[Gauge] = []

    def add_gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Expose a value computed at scrape time."""
        self.gauges.append(Gauge(name, help_text, read))

    def render(self) -> str:
        """The whole exposition, ready to serve as text/plain; version=0.0.4."""
        parts: list[str] = []
        metrics: list[Counter | Histogram | Gauge] = [
            self.events_ingested,
            self.events_duplicate,
            self.webhooks_rejected,
            self.escalations_opened,
            self.deliveries,
            self.delivery_latency,
            self.rules_reloads,
            *self.gauges,
        ]
        for metric in metrics:
            parts.extend(metric.render())
        return "\n".join(parts) + "\n"
