"""The source step of a build: get its SRPM, by URL import or made from git.

A URL is fetched on the host and only read by `rpm -qp` there. A git source
is cloned on the host (with every argument passed as data, see `scm`) and
turned into an SRPM inside a builder VM of the build's first chroot, since
making it runs the spec. Either way the SRPM lands under the build's source
directory, named from its validated header only.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from kopers.config import Config
from kopers.db.store import Store
from kopers.errors import BuildFailed, KopersError
from kopers.logs.hub import LogHub
from kopers.models import Build, BuildState, SourceType
from kopers.net.local import address_policy
from kopers.paths import DataPaths
from kopers.rpmfile import RpmInfo, read_srpm
from kopers.sched.graph import SOURCE
from kopers.vm.pool import VmPool
from kopers.worker import job as jobs
from kopers.worker import scm
from kopers.worker.importer import fetch_srpm
from kopers.worker.results import take_results
from kopers.worker.session import cause, failure_reason, result_limits, run_builder

log = logging.getLogger(__name__)


class SourceStep:
    def __init__(
        self, config: Config, paths: DataPaths, store: Store, hub: LogHub, vms: VmPool
    ) -> None:
        self.config = config
        self.paths = paths
        self.store = store
        self.hub = hub
        self.vms = vms
        # URL imports and git clones fetch where the user says: through the policy.
        self.policy = address_policy(config.network)

    async def run(self, build_id: int) -> BuildState:
        build = await self.store.get_build(build_id)
        url = str(build.source.get("url") or build.source.get("clone_url", ""))
        scm_source = build.source_type == SourceType.SCM
        step = BuildState.RUNNING if scm_source else BuildState.IMPORTING
        if not await self.store.set_source_state(build_id, step):
            return BuildState.CANCELED  # the build was canceled before its source step ran
        try:
            if scm_source:
                path, info = await self._srpm_from_git(build)
            else:
                path, info = await fetch_srpm(
                    url,
                    self.paths.source_dir(build_id),
                    self.config.server.max_upload_mib << 20,
                    self.policy,
                )
        except Exception as exc:
            # Any failure, Kopers' own or not, ends the step: a source step left
            # importing would keep its build unfinished for good.
            if isinstance(exc, KopersError):
                log.info("build %d: source from %s failed: %s", build_id, url, exc.message)
            else:
                log.exception("build %d: the source step crashed", build_id)
            await self.store.set_source_state(build_id, BuildState.FAILED)
            for task in build.tasks:
                await self.store.skip_task(
                    build_id, task.chroot, f"source import failed: {cause(exc)}"
                )
            return BuildState.FAILED
        stored = await self.store.set_source(
            build_id,
            info.nevra.name,
            f"{info.nevra.version}-{info.nevra.release}",
            path.name,
            BuildState.SUCCEEDED,
        )
        # Not stored: the build was canceled meanwhile, and its source goes with it.
        return BuildState.SUCCEEDED if stored else BuildState.CANCELED

    async def _srpm_from_git(self, build: Build) -> tuple[Path, RpmInfo]:
        """Clone on the host, make the SRPM in a builder VM of the build's first chroot."""
        src = build.source
        chroot = self.config.chroot(build.tasks[0].chroot) if build.tasks else None
        if chroot is None or not chroot.enabled:
            raise BuildFailed("the build has no chroot this server can build in")
        channel = self.hub.open(build.id, SOURCE)
        workdir = self.paths.work / f"{build.id:08d}-source"
        try:
            await channel.say(f"cloning {src['clone_url']} {src.get('committish') or ''}")
            commit = await scm.checkout(
                str(src["clone_url"]),
                str(src.get("committish") or ""),
                workdir / "tree",
                self.policy,
            )
            await channel.say(f"checked out commit {commit}")
            sources, spec = scm.locate_spec(
                workdir / "tree", str(src.get("subdirectory") or ""), str(src.get("spec") or "")
            )
            job = {
                "mode": "srpm",
                "build_id": build.id,
                "chroot": chroot.name,
                "spec": f"{jobs.SRC_DIR}/{spec.relative_to(sources)}",
                "sources": jobs.SRC_DIR,
                "result_dir": jobs.OUT_DIR,
            }
            async with self.vms.builder(chroot.template, f"{build.id}-source") as vm:
                await vm.mkdirs(jobs.OUT_DIR)
                await vm.put(sources, jobs.SRC_DIR)
                await vm.put_text(json.dumps(job, indent=2), jobs.JOB_PATH)
                status = await run_builder(vm, channel, build.timeout, self.config.build)
                if status == 0:
                    limits = result_limits(self.config.build)
                    await take_results(vm, jobs.OUT_DIR, workdir / "out", limits)
            if status != 0:
                raise BuildFailed(failure_reason(status))
            srpms = sorted((workdir / "out").glob("*.src.rpm"))
            if len(srpms) != 1:
                raise BuildFailed(f"the builder made {len(srpms)} source packages, not one")
            info = await read_srpm(srpms[0])
            dest = self.paths.source_dir(build.id)
            dest.mkdir(parents=True, exist_ok=True)
            final = dest / info.nevra.filename
            shutil.move(srpms[0], final)
            channel.close(BuildState.SUCCEEDED, None)
            return final, info
        except Exception as exc:
            await channel.say(f"the source build failed: {cause(exc)}")
            channel.close(BuildState.FAILED, cause(exc))
            raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
