"""The runner: what the scheduler calls to run one task of the graph.

A build's source task runs the source step (`source`); each chroot task runs
the per-chroot pipeline (`pipeline`). Both end every task they start, so the
scheduler only learns the final state.
"""

from __future__ import annotations

from kopers.config import Config
from kopers.db.store import Store
from kopers.logs.hub import LogHub
from kopers.models import BuildState
from kopers.net.proxy import EgressProxy
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.sched.graph import TaskKey
from kopers.vm.pool import VmPool
from kopers.worker.pipeline import ChrootPipeline
from kopers.worker.source import SourceStep


class Runner:
    def __init__(
        self,
        config: Config,
        paths: DataPaths,
        store: Store,
        hub: LogHub,
        publisher: Publisher,
        vms: VmPool,
        proxy: EgressProxy | None = None,
    ) -> None:
        self.source = SourceStep(config, paths, store, hub, vms, proxy, publisher)
        self.pipeline = ChrootPipeline(config, paths, store, hub, publisher, vms, proxy)

    async def run(self, key: TaskKey) -> BuildState:
        if key.is_source:
            return await self.source.run(key.build_id)
        return await self.pipeline.run(key.build_id, key.chroot)
