"""The web UI in a real browser: Playwright driving Chromium, a real Kopers, real VM builds.

One server and two VM builds. A user whose account an admin made (and whose
password the admin set with `kopers user passwd`) signs in, creates a project
with its form, uploads a source RPM with the new-build form, watches its log
arrive live, sees it succeed, copies the install command from the project page
and runs it with dnf in a throwaway root (the package installs), changes a
setting, grants another user a role, and makes a token on /api/ that copr-cli
then uses. A second build is canceled from its page while it runs: it ends
at once, canceled, its VM destroyed and nothing of it published.

Screenshots of the project page, the build page with its live log and the
monitor are written to docs/screenshots/ (the README shows them), from the
pages as they run here.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright import sync_api as playwright

from tests.conftest import service_dir
from tests.e2e.dnfcopr import Client
from tests.e2e.server import CHROOT, REPO, VENV_BIN, Server
from tests.e2e.vmhelp import live_text

pytestmark = pytest.mark.e2e
OWNER, OTHER, PROJECT, PACKAGE = "erin", "frank", "web", "kopers-web"
PASSWORD = "a long browser password"
SHOTS = REPO / "docs" / "screenshots"
BUILD_S = 900_000  # ms: a cold VM boot on a slow machine, then the build


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with service_dir("kopers-browser-") as base:
        server = Server.create(base)
        server.start()
        try:
            for name in (OWNER, OTHER):
                server.user(name)
                # As an admin sets it: the password on standard input.
                server.kopers("user", "passwd", name, stdin=PASSWORD + "\n")
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def signed_in(chromium: object, server: Server, user: str) -> object:
    """A page in a browser context of its own, signed in as `user` through the form."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{server.url}/login/?next=/coprs/{user}/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/coprs/{user}/")
    return page


# The elements that stick out to the right of the window (for a failure's message).
WIDE = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' +
                       Math.round(e.getBoundingClientRect().right))"""


def task_log(server: Server, build_id: int) -> str:
    """The task's log, from its websocket: in a thread, as Playwright's loop runs in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(live_text, server, build_id).result()


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=False)  # type: ignore[attr-defined]


def test_from_sign_in_to_dnf_install_in_the_browser(
    server: Server, chromium: object, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    page = signed_in(chromium, server, OWNER)
    base = f"{server.url}/coprs/{OWNER}/{PROJECT}/"

    # A project, made with its form.
    page.goto(f"{server.url}/coprs/{OWNER}/add/")
    page.get_by_label("Name").fill(PROJECT)
    page.get_by_label("Description").fill("Built from the browser")
    page.get_by_label(CHROOT).check()
    page.get_by_role("button", name="Create the project").click()
    page.wait_for_url(base)
    assert server.get(f"/api_3/project?ownername={OWNER}&projectname={PROJECT}")[
        "chroot_repos"
    ].keys() == {CHROOT}

    # A source RPM, uploaded with the new-build form.
    page.goto(f"{base}add_build/")
    page.set_input_files("#upload-file", str(make_srpm(PACKAGE, "1.0")))
    page.locator("#from-upload").get_by_role("button", name="Build").click()
    page.wait_for_url(re.compile(r".*/build/\d+/$"))
    build_id = int(re.findall(r"/build/(\d+)/$", page.url)[0])

    # The builds list and the monitor, opened now, follow the build without a reload.
    watchers = []
    for path in ("builds/", "monitor/"):
        watcher = page.context.new_page()
        watcher.goto(base + path)
        mark = f'[data-state-of="{build_id}"], [data-state-of="{build_id}:{CHROOT}"]'
        state = watcher.locator(mark).first
        assert state.inner_text() != "succeeded", path
        watchers.append((path, watcher, state))

    # Its log arrives while the page is open: the builder starts after the VM boots.
    log = page.locator(f"#log-{CHROOT}")
    assert "builder started" not in log.inner_text()
    page.wait_for_function(
        "el => el.textContent.includes('rpmbuild')", arg=log.element_handle(), timeout=BUILD_S
    )
    assert page.locator("#build-state").inner_text() in ("running", "succeeded")
    shot(page, "build.png")
    state = page.locator("#build-state")
    page.wait_for_function(
        "el => el.textContent === 'succeeded'", arg=state.element_handle(), timeout=BUILD_S
    )
    assert server.get(f"/api_3/build/{build_id}")["state"] == "succeeded"
    for _path, watcher, state in watchers:
        watcher.wait_for_function(
            "el => el.textContent === 'succeeded'", arg=state.element_handle(), timeout=60_000
        )
        watcher.close()

    # The install command, as the project page shows it, installs the package.
    page.goto(base)
    command = page.locator(f'tr.chroot[data-chroot="{CHROOT}"] pre.command').inner_text()
    shot(page, "project.png")
    client = Client.make(tmp_path / "dnf")
    client.run_page_command(command.strip())
    client.install(PACKAGE, "1.0")

    page.goto(f"{base}monitor/")
    assert page.locator("text=succeeded").count() >= 1
    shot(page, "monitor.png")

    # Readable on a phone: no page scrolls sideways (wide tables and logs scroll in their box).
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("", "builds/", f"build/{build_id}/", "monitor/", "add_build/", "edit/"):
        page.goto(base + path)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (path, width, page.evaluate(WIDE))
    page.set_viewport_size({"width": 1280, "height": 900})

    # A setting, changed with the settings form.
    page.goto(f"{base}edit/")
    page.get_by_label("Description").fill("Changed in the browser")
    page.get_by_role("button", name="Save").click()
    project = server.get(f"/api_3/project?ownername={OWNER}&projectname={PROJECT}")
    assert project["description"] == "Changed in the browser"

    # frank asks to build; erin gives him the role.
    other = signed_in(chromium, server, OTHER)
    other.goto(f"{base}permissions/")
    other.get_by_label("builder", exact=True).check()
    other.get_by_role("button", name="Ask for these roles").click()
    asked = server.get_as(OWNER, f"/api_3/project/permissions/get/{OWNER}/{PROJECT}")
    assert asked["permissions"][OTHER]["builder"] == "request"
    page.goto(f"{base}permissions/")
    page.get_by_label("User name").fill(OTHER)
    page.locator("#grant-builder").select_option("approved")
    page.get_by_role("button", name="Set the roles").click()
    granted = server.get_as(OWNER, f"/api_3/project/permissions/get/{OWNER}/{PROJECT}")
    assert granted["permissions"][OTHER]["builder"] == "approved"

    # A token from /api/, used by copr-cli.
    page.goto(f"{server.url}/api/")
    page.get_by_role("button", name="Make a new token").click()
    config = page.locator("#copr-config").inner_text()
    conf = tmp_path / "copr.conf"
    conf.write_text(config)
    r = subprocess.run(
        [str(VENV_BIN / "copr-cli"), "--config", str(conf), "whoami"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server.env,
    )
    assert r.returncode == 0 and r.stdout.strip() == OWNER, r.stdout + r.stderr


def test_a_running_build_is_canceled_from_its_page(
    server: Server, chromium: object, make_srpm: Callable[..., Path]
) -> None:
    project = "canceling"
    r = server.copr(OWNER, "create", project, "--chroot", CHROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    slow = make_srpm("kopers-web-slow", "1.0", build="sleep 600")
    r = server.copr(OWNER, "build", "--nowait", project, str(slow))
    assert r.returncode == 0, r.stdout + r.stderr
    build_id = int(re.findall(r"Created builds: (\d+)", r.stdout)[0])

    page = signed_in(chromium, server, OWNER)
    page.goto(f"{server.url}/coprs/{OWNER}/{project}/build/{build_id}/")
    log = page.locator(f"#log-{CHROOT}")
    page.wait_for_function(
        "el => el.textContent.includes('+ sleep 600')", arg=log.element_handle(), timeout=BUILD_S
    )
    page.get_by_role("button", name=f"Cancel build {build_id}").click()
    page.wait_for_url(re.compile(rf".*/build/{build_id}/$"))
    # Long before its 600 seconds of %build are over: the cancel stops the build.
    assert server.wait_build(build_id, timeout=120)["state"] == "canceled"
    page.reload()
    assert page.locator("#build-state").inner_text() == "canceled"
    assert server.wait_no_vms()
    log = task_log(server, build_id)
    assert "kopers: build canceled by the user; its VM is destroyed" in log, log[-3000:]
    assert "kopers: task ended" not in log
    assert server.get(f"/api_3/build/built-packages/{build_id}") == {}
    chroot_dir = server.data_dir / "results" / OWNER / project / CHROOT
    assert not list(chroot_dir.glob(f"{build_id:08d}-*")), "nothing is published"
