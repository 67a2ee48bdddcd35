"""The source step of a build: get its SRPM, by URL import or made in a VM.

A URL is fetched on the host and only read by `rpm -qp` there. Every other
SRPM is made inside a builder VM of the build's first chroot (a custom
script's own chroot), since making it runs the spec or the user's script: a
git checkout (cloned on the host with every argument passed as data, see
`scm`), an uploaded spec, a script, or a spec pyp2spec generates from the
configured Python package index. The VM reaches the network only through
the egress proxy, with the same address policy as URL imports. Either way the
SRPM lands under the build's source directory, named from its validated
header only. An uploaded binary RPM needs no SRPM: it is published as it is
(kopers.worker.rpmupload).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

from kopers.config import Config
from kopers.db.store import Store
from kopers.errors import BuildFailed, KopersError
from kopers.logs.hub import LogChannel, LogHub
from kopers.models import Build, BuildState, SourceType
from kopers.net.local import address_policy
from kopers.net.proxy import EgressProxy
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.rpmfile import RpmInfo, read_srpm
from kopers.sched.graph import SOURCE
from kopers.vm.pool import VmPool
from kopers.worker import job as jobs
from kopers.worker import scm
from kopers.worker.importer import fetch_srpm
from kopers.worker.results import take_results
from kopers.worker.rpmupload import publish_rpm_upload
from kopers.worker.session import cause, failure_reason, result_limits, run_builder
from kopers.worker.srpmjob import SCRIPT_NAME, srpm_job

log = logging.getLogger(__name__)


class SourceStep:
    def __init__(
        self,
        config: Config,
        paths: DataPaths,
        store: Store,
        hub: LogHub,
        vms: VmPool,
        proxy: EgressProxy | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.config = config
        self.paths = paths
        self.store = store
        self.hub = hub
        self.vms = vms
        self.proxy = proxy
        self.publisher = publisher
        # URL imports and git clones fetch where the user says: through the policy.
        self.policy = proxy.policy if proxy is not None else address_policy(config.network)

    async def run(self, build_id: int) -> BuildState:
        build = await self.store.get_build(build_id)
        url = str(build.source.get("url") or build.source.get("clone_url", ""))
        in_vm = build.source_type.in_vm
        step = BuildState.RUNNING if in_vm else BuildState.IMPORTING
        if not await self.store.set_source_state(build_id, step):
            return BuildState.CANCELED  # the build was canceled before its source step ran
        try:
            if build.source_type == SourceType.RPM_UPLOAD:
                if self.publisher is None:
                    raise BuildFailed("this server runs no publisher for uploaded RPMs")
                info = await publish_rpm_upload(
                    build, self.paths, self.store, self.hub, self.publisher
                )
                path = self.paths.source_dir(build_id) / info.nevra.filename
            elif in_vm:
                path, info = await self._srpm_in_vm(build)
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
                log.info("build %d: source step failed: %s", build_id, exc.message)
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

    def _source_chroot(self, build: Build) -> str:
        """A custom script's chroot, else the build's first; BuildFailed if none can build."""
        name = build.source.get("chroot") if build.source_type == SourceType.CUSTOM else None
        if not name and build.tasks:
            name = build.tasks[0].chroot
        chroot = self.config.chroot(str(name)) if name else None
        if chroot is None or not chroot.enabled:
            raise BuildFailed("the build has no chroot this server can build in")
        return chroot.name

    async def _stage(self, build: Build, workdir: Path, channel: LogChannel) -> tuple[Path, str]:
        """The local directory to upload as SRC_DIR, and the spec's path in it ("" if none)."""
        src = build.source
        if build.source_type == SourceType.SCM:
            await channel.say(f"cloning {src['clone_url']} {src.get('committish') or ''}")
            commit = await scm.checkout(
                str(src["clone_url"]),
                str(src.get("committish") or ""),
                workdir / "tree",
                self.policy,
                on=scm.pin_of(src),
            )
            await channel.say(f"checked out commit {commit}")
            subdirectory, spec = str(src.get("subdirectory") or ""), str(src.get("spec") or "")
            if src.get("source_build_method") == "make_srpm":
                return scm.locate_make_srpm(workdir / "tree", subdirectory, spec)
            sources, path = scm.locate_spec(workdir / "tree", subdirectory, spec)
            return sources, str(path.relative_to(sources))
        staged = workdir / "staged"
        staged.mkdir(parents=True)
        if build.source_type == SourceType.SPEC:
            name = str(src["filename"])
            shutil.copyfile(self.paths.source_dir(build.id) / name, staged / name)
            return staged, name
        if build.source_type == SourceType.CUSTOM:
            (staged / SCRIPT_NAME).write_text(str(src["script"]))
            return staged, ""
        if build.source_type == SourceType.PYPI:
            await channel.say(
                f"generating the spec of {src.get('pypi_package_name')} with pyp2spec "
                f"from {self.config.sources.pypi_url}"
            )
            return staged, ""
        raise BuildFailed(f"source type {build.source_type} is not made in a VM")

    async def _srpm_in_vm(self, build: Build) -> tuple[Path, RpmInfo]:
        """Make the SRPM in a builder VM; the network only through the egress proxy."""
        chroot = self.config.chroot(self._source_chroot(build))
        assert chroot is not None
        channel = self.hub.open(build.id, SOURCE)
        workdir = self.paths.work / f"{build.id:08d}-source"
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            sources, spec = await self._stage(build, workdir, channel)
            async with contextlib.AsyncExitStack() as scope:
                vm = await scope.enter_async_context(
                    self.vms.builder(chroot.template, f"{build.id}-source")
                )
                proxy_url = None
                if self.proxy is not None:
                    session = await scope.enter_async_context(
                        self.proxy.session(f"build {build.id} source")
                    )
                    port = await vm.forward(*session.address)
                    proxy_url = f"http://127.0.0.1:{port}"
                    await channel.say(
                        "network access goes through Kopers' egress proxy, which refuses "
                        "local, private and this host's own addresses"
                    )
                job = srpm_job(build, chroot.name, spec, proxy_url, self.config.sources.pypi_url)
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
