"""What Kopers counts and measures, for Prometheus: the metric definitions.

One `Metrics` per `Kopers`, with a registry of its own (never the client
library's global one), so two instances in one process do not collide.
Components do not import this module: the pool and the pipeline call plain
hooks (`VmPool.boot_observers`, `ChrootPipeline.on_ended`), which `watch`
points here; the HTTP side is `kopers.api.metrics`.

A scrape costs one pass over in-memory state and no SQL: queue depth and
tasks by state come from the scheduler's graph, and the warm and busy VMs
from the pool, read at collect time (`StateCollector`). Every label takes
values from a bounded set: a route's pattern, never its path; a known HTTP
method or "other"; an error class name; a step, state or template name.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kopers.models import BuildState, StepSource, TaskStep
from kopers.sched.graph import Node

# States a task has while the scheduler's graph holds it.
LIVE_STATES: Final = (
    BuildState.WAITING,
    BuildState.PENDING,
    BuildState.STARTING,
    BuildState.RUNNING,
    BuildState.IMPORTING,
)
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "(unmatched)"  # the route label of a request no route took
INFRASTRUCTURE: Final = "infrastructure"
BUILD: Final = "build"
# How a failed task's reason begins when Kopers' side failed, not the package
# (kopers.worker.pipeline words them): every attempt on a fresh VM failed,
# Kopers itself failed, or it could not publish; or how it ends when this
# server lacks the chroot.
_INFRASTRUCTURE_REASONS: Final = (
    "infrastructure failure",
    "Kopers failed",
    "the results could not be published",
)
_UNCONFIGURED: Final = "is not configured on this server"
# Seconds. Builds take from seconds (a trivial noarch package) to hours.
TASK_BUCKETS: Final = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 18000)
# A clone boots in seconds under KVM and in tens of seconds under TCG.
BOOT_BUCKETS: Final = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300)
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TaskEnded = Callable[[BuildState, str | None, Sequence[TaskStep]], None]


class Graph(Protocol):
    """What the collector reads of the scheduler's graph: its nodes."""

    @property
    def nodes(self) -> Mapping[Any, Node]: ...


class Scheduling(Protocol):
    @property
    def graph(self) -> Graph: ...


class Pool(Protocol):
    boot_observers: list[Callable[[str, float], None]]

    def status(self) -> dict[str, Any]: ...


class Pipeline(Protocol):
    on_ended: list[TaskEnded]


# -- pure: label values and counts ------------------------------------------------


def method_label(method: str) -> str:
    """The request's method, or "other": any token is a method to aiohttp."""
    return method if method in METHODS else "other"


def failure_class(reason: str | None) -> str:
    """Whether a failed task failed for Kopers' side (infrastructure) or the package's."""
    text = reason or ""
    if text.startswith(_INFRASTRUCTURE_REASONS) or text.endswith(_UNCONFIGURED):
        return INFRASTRUCTURE
    return BUILD


def task_seconds(steps: Sequence[TaskStep]) -> float:
    """How long a task ran: from its run's start to the end of its last step."""
    return max((s.offset + s.seconds for s in steps), default=0.0)


def queue_depths(nodes: Iterable[Node]) -> dict[str, int]:
    """Pending tasks per chroot (a build's source step under its own name)."""
    return dict(Tally(n.key.chroot for n in nodes if n.state == BuildState.PENDING))


def task_states(nodes: Iterable[Node]) -> dict[str, int]:
    """Tasks in the graph by state; every live state is present, zero or not."""
    counts = Tally(str(n.state) for n in nodes)
    return {str(s): counts[str(s)] for s in LIVE_STATES} | dict(counts)


def pool_gauges(status: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per template: VMs booting, warm (idle spares), busy, and tasks waiting for one."""
    templates: Mapping[str, Mapping[str, Any]] = status.get("templates", {})
    return {
        kind: {name: int(t.get(kind, 0)) for name, t in templates.items()}
        for kind in ("booting", "warm", "busy", "waiting")
    }


# -- the metrics -------------------------------------------------------------------


class StateCollector(Collector):
    """Gauges read from the scheduler and the pool when scraped, not kept up to date."""

    def __init__(self, scheduler: Scheduling, pool: Pool) -> None:
        self.scheduler = scheduler
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        nodes = list(self.scheduler.graph.nodes.values())
        depth = GaugeMetricFamily(
            "kopers_queue_depth", "Tasks pending (ready or not), per chroot.", labels=["chroot"]
        )
        for chroot, count in sorted(queue_depths(nodes).items()):
            depth.add_metric([chroot], count)
        yield depth
        states = GaugeMetricFamily(
            "kopers_tasks", "Tasks the scheduler holds, by state.", labels=["state"]
        )
        for state, count in sorted(task_states(nodes).items()):
            states.add_metric([state], count)
        yield states
        status = self.pool.status()
        helps = {
            "booting": "Builder VMs booting, per template.",
            "warm": "Warm builder VMs (booted, idle), per template.",
            "busy": "Builder VMs serving a task, per template.",
            "waiting": "Tasks waiting for a builder VM, per template.",
        }
        for kind, per_template in pool_gauges(status).items():
            family = GaugeMetricFamily(f"kopers_vms_{kind}", helps[kind], labels=["template"])
            for template, count in sorted(per_template.items()):
                family.add_metric([template], count)
            yield family
        yield GaugeMetricFamily(
            "kopers_vm_slots", "Builder VMs that may exist at once.", value=status.get("slots", 0)
        )


class Metrics:
    """The metrics of one Kopers instance, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kopers_http_requests",
            "HTTP requests answered, by route pattern, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "kopers_http_request_seconds",
            "Time to answer an HTTP request, by route pattern and method.",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "kopers_errors", "Errors answered to clients, by kind.", ["kind"], registry=r
        )
        self.tasks_ended = Counter(
            "kopers_tasks_ended", "Build tasks that ended, by state.", ["state"], registry=r
        )
        self.task_failures = Counter(
            "kopers_task_failures",
            "Failed build tasks, by cause: infrastructure (Kopers' side) or build (the package).",
            ["cause"],
            registry=r,
        )
        self.task_seconds = Histogram(
            "kopers_task_seconds",
            "How long build tasks ran, by final state.",
            ["state"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.step_seconds = Histogram(
            "kopers_task_step_seconds",
            "How long each step of a build task took (builder, signing, publish, ...).",
            ["step"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.vm_boot_seconds = Histogram(
            "kopers_vm_boot_seconds",
            "Time from starting a builder VM until its SSH answered, per template.",
            ["template"],
            buckets=BOOT_BUCKETS,
            registry=r,
        )
        self.live_log_viewers = Gauge(
            "kopers_live_log_viewers", "Open live-log websockets.", registry=r
        )
        for cause in (INFRASTRUCTURE, BUILD):
            self.task_failures.labels(cause)  # present from the start, at zero

    def watch(self, scheduler: Scheduling, pool: Pool, pipeline: Pipeline) -> None:
        """Read the scheduler and pool when scraped; hear of boots and ended tasks."""
        self.registry.register(StateCollector(scheduler, pool))
        pool.boot_observers.append(self.vm_booted)
        pipeline.on_ended.append(self.task_ended)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method_label(method)
        self.requests.labels(route, method, str(status)).inc()
        self.request_seconds.labels(route, method).observe(seconds)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def vm_booted(self, template: str, seconds: float) -> None:
        self.vm_boot_seconds.labels(template).observe(seconds)

    def task_ended(self, state: BuildState, reason: str | None, steps: Sequence[TaskStep]) -> None:
        self.tasks_ended.labels(str(state)).inc()
        if state == BuildState.FAILED:
            self.task_failures.labels(failure_class(reason)).inc()
        self.task_seconds.labels(str(state)).observe(task_seconds(steps))
        for step in steps:
            # Kopers' own steps only: the builder's phases are timed between
            # lines the build prints, so they are only as true as its output.
            if step.source == StepSource.KOPERS:
                self.step_seconds.labels(step.name).observe(step.seconds)
