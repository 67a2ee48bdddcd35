"""A browser for the web pages' tests: its own cookie jar, signing in, forms with CSRF.

Shared by the tests of the pages that need a signed-in user (accounts, forms).
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from kopers import passwords
from tests.integration.conftest import Api

PASSWORD = "correct horse battery staple"


class Browser:
    """One browser: a cookie jar, and the pages and forms it gets."""

    def __init__(self, api: Api) -> None:
        self.base = api.client.make_url("/")
        self.http = aiohttp.ClientSession(
            base_url=str(self.base), cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, CIMultiDictProxy[str]]:
        async with self.http.get(path, allow_redirects=False, **kw) as resp:
            return resp.status, await resp.text(), resp.headers

    async def post(
        self, path: str, data: dict[str, str] | bytes, **kw: Any
    ) -> tuple[int, str, CIMultiDictProxy[str]]:
        async with self.http.post(path, data=data, allow_redirects=False, **kw) as resp:
            return resp.status, await resp.text(), resp.headers

    async def token(self, path: str = "/login/") -> str:
        """The CSRF token of the form on `path`."""
        status, page, _ = await self.get(path)
        assert status == 200, page
        return csrf_of(page)

    async def sign_in(
        self, user: str, password: str = PASSWORD, next_: str | None = None
    ) -> tuple[int, str, CIMultiDictProxy[str]]:
        form = {"csrf_token": await self.token(), "username": user, "password": password}
        if next_ is not None:
            form["next"] = next_
        return await self.post("/login/", form)

    def cookie(self, name: str = "kopers_session") -> str | None:
        morsel = self.http.cookie_jar.filter_cookies(URL(str(self.base))).get(name)
        return morsel.value if morsel is not None else None


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return unescape(found.group(1))


async def signed_in(api: Api, user: str) -> Browser:
    """A browser signed in as `user` (given the password PASSWORD first). Close it after."""
    account = await api.kopers.store.get_user(user)
    await api.kopers.store.set_password(account, passwords.hash_password(PASSWORD))
    browser = Browser(api)
    status, page, _ = await browser.sign_in(user)
    assert status == 303, page
    return browser


async def form_post(
    browser: Browser, form_page: str, action: str, fields: dict[str, str]
) -> tuple[int, str, CIMultiDictProxy[str]]:
    """POST `fields` to `action` with the CSRF token of the form on `form_page`."""
    return await browser.post(action, {"csrf_token": await browser.token(form_page), **fields})
