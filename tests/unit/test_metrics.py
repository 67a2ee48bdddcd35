"""The metric definitions: bounded labels, task and boot observations, state read at scrape."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kopers import config
from kopers.api.metrics import address_allowed
from kopers.errors import ConfigError
from kopers.metrics import (
    BUILD,
    INFRASTRUCTURE,
    Metrics,
    failure_class,
    method_label,
    pool_gauges,
    queue_depths,
    task_seconds,
    task_states,
)
from kopers.models import BuildState, StepSource, TaskStep
from kopers.sched.graph import SOURCE, Node, TaskGraph, TaskKey

REPO = Path(__file__).resolve().parents[2]


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, parsed back from the text format."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


class FakeScheduler:
    def __init__(self) -> None:
        self.graph = TaskGraph()


class FakePool:
    def __init__(self, status: dict[str, Any]) -> None:
        self.boot_observers: list[Any] = []
        self._status = status
        self.calls = 0

    def status(self) -> dict[str, Any]:
        self.calls += 1
        return self._status


class FakePipeline:
    def __init__(self) -> None:
        self.on_ended: list[Any] = []


def node(build: int, chroot: str, state: BuildState) -> Node:
    return Node(TaskKey(build, chroot), "alice", state)


def test_methods_outside_the_known_ones_share_one_label() -> None:
    assert method_label("GET") == "GET" and method_label("DELETE") == "DELETE"
    assert {method_label(f"X{i}") for i in range(100)} == {"other"}


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("infrastructure failure, not the package: 3 attempts failed; last: ssh", INFRASTRUCTURE),
        ("Kopers failed while running this task (disk full)", INFRASTRUCTURE),
        ("the results could not be published (gpg)", INFRASTRUCTURE),
        ("chroot fedora-41-x86_64 is not configured on this server", INFRASTRUCTURE),
        ("the builder exited with status 1", BUILD),
        ("the build ran longer than its timeout", BUILD),
        (None, BUILD),
    ],
)
def test_a_failure_is_infrastructure_or_the_build(reason: str | None, cause: str) -> None:
    assert failure_class(reason) == cause


def test_queue_depth_and_states_come_from_the_graph() -> None:
    nodes = [
        node(1, "debian-12-x86_64", BuildState.PENDING),
        node(2, "debian-12-x86_64", BuildState.PENDING),
        node(2, "fedora-40-x86_64", BuildState.RUNNING),
        node(3, SOURCE, BuildState.PENDING),
        node(4, "debian-12-x86_64", BuildState.WAITING),
    ]
    assert queue_depths(nodes) == {"debian-12-x86_64": 2, SOURCE: 1}
    states = task_states(nodes)
    assert states["pending"] == 3 and states["running"] == 1 and states["waiting"] == 1
    assert states["starting"] == 0 and states["importing"] == 0


def test_pool_gauges_per_template() -> None:
    status = {"templates": {"debian-12": {"booting": 1, "warm": 2, "busy": 3, "waiting": 0}}}
    assert pool_gauges(status) == {
        "booting": {"debian-12": 1},
        "warm": {"debian-12": 2},
        "busy": {"debian-12": 3},
        "waiting": {"debian-12": 0},
    }
    assert pool_gauges({"templates": {}}) == {k: {} for k in ("booting", "warm", "busy", "waiting")}


def test_a_task_lasts_until_the_end_of_its_last_step() -> None:
    steps = [TaskStep("vm claim", 1.0, offset=0.0), TaskStep("builder", 10.0, offset=2.0)]
    assert task_seconds(steps) == 12.0
    assert task_seconds([]) == 0.0


def test_the_state_is_read_at_scrape_time() -> None:
    metrics = Metrics()
    scheduler = FakeScheduler()
    pool = FakePool(
        {"slots": 4, "templates": {"debian-12": {"booting": 0, "warm": 1, "busy": 2, "waiting": 3}}}
    )
    metrics.watch(scheduler, pool, FakePipeline())
    assert pool.calls == 0  # nothing is read before a scrape
    assert value(metrics, "kopers_queue_depth", chroot="debian-12-x86_64") == 0
    scheduler.graph.add(node(1, "debian-12-x86_64", BuildState.PENDING))
    got = samples(metrics)
    assert got[("kopers_queue_depth", frozenset({("chroot", "debian-12-x86_64")}))] == 1
    assert got[("kopers_tasks", frozenset({("state", "pending")}))] == 1
    assert got[("kopers_vms_warm", frozenset({("template", "debian-12")}))] == 1
    assert got[("kopers_vms_busy", frozenset({("template", "debian-12")}))] == 2
    assert got[("kopers_vms_waiting", frozenset({("template", "debian-12")}))] == 3
    assert got[("kopers_vm_slots", frozenset())] == 4
    assert pool.calls == 2  # one status() per scrape


def test_boots_and_ended_tasks_reach_the_histograms_through_the_hooks() -> None:
    metrics = Metrics()
    pool, pipeline = FakePool({"templates": {}}), FakePipeline()
    metrics.watch(FakeScheduler(), pool, pipeline)
    [booted] = pool.boot_observers
    booted("debian-12", 7.5)
    [ended] = pipeline.on_ended
    steps = [
        TaskStep("vm claim", 0.5, offset=0.0),
        TaskStep("builder", 30.0, offset=1.0),
        TaskStep("rpmbuild", 25.0, StepSource.BUILDER, offset=3.0),
        TaskStep("publish", 2.0, offset=31.0),
    ]
    ended(BuildState.SUCCEEDED, None, steps)
    ended(BuildState.FAILED, "the builder exited with status 1", steps[:2])
    ended(BuildState.FAILED, "infrastructure failure, not the package: 3 attempts", [])
    m = metrics
    assert value(m, "kopers_vm_boot_seconds_count", template="debian-12") == 1
    assert value(m, "kopers_vm_boot_seconds_sum", template="debian-12") == 7.5
    assert value(m, "kopers_tasks_ended_total", state="succeeded") == 1
    assert value(m, "kopers_tasks_ended_total", state="failed") == 2
    assert value(m, "kopers_task_failures_total", cause="build") == 1
    assert value(m, "kopers_task_failures_total", cause="infrastructure") == 1
    assert value(m, "kopers_task_step_seconds_count", step="builder") == 2
    assert value(m, "kopers_task_step_seconds_sum", step="publish") == 2.0
    assert value(m, "kopers_task_seconds_sum", state="succeeded") == 33.0
    # The builder's own phases are not Kopers' steps.
    assert value(m, "kopers_task_step_seconds_count", step="rpmbuild") == 0


def test_two_instances_do_not_share_their_metrics() -> None:
    a, b = Metrics(), Metrics()
    a.request("/api_3/", "GET", 200, 0.01)
    assert value(a, "kopers_http_requests_total", route="/api_3/", method="GET", status="200") == 1
    assert value(b, "kopers_http_requests_total", route="/api_3/", method="GET", status="200") == 0


LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4 client on a dual-stack socket
        ("127.0.0.2", False),
        ("10.0.0.1", False),
        ("::2", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("not an address", False),
    ],
)
def test_the_address_rule(remote: str | None, allowed: bool) -> None:
    assert address_allowed(remote, LOOPBACK) is allowed


def test_no_network_allows_no_address() -> None:
    assert not address_allowed("127.0.0.1", ())


def test_the_metrics_setting_defaults_to_loopback_and_is_validated(tmp_path: Path) -> None:
    cfg = config.load(str(REPO / "kopers.toml"), env={})
    assert cfg.metrics.allow == LOOPBACK
    cfg = config.load(str(REPO / "kopers.toml"), env={"KOPERS_METRICS_ALLOW": "10.0.0.0/8"})
    assert cfg.metrics.allow == (ipaddress.ip_network("10.0.0.0/8"),)
    assert (
        config.load(str(REPO / "kopers.toml"), env={"KOPERS_METRICS_ALLOW": ""}).metrics.allow == ()
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('[metrics]\nallow = ["not-a-network"]\n')
    with pytest.raises(ConfigError, match=r"metrics\.allow"):
        config.load(str(bad), env={})
    bad.write_text('[metrics]\nallow = "127.0.0.1/32"\n')
    with pytest.raises(ConfigError, match=r"metrics\.allow"):
        config.load(str(bad), env={})
