"""The application keys handlers use to reach Kopers' components.

A leaf module: handlers import their key from here, never from the module
that builds the application, so no handler depends on the app's wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from kopers.service import Kopers

KOPERS: web.AppKey[Kopers] = web.AppKey("kopers")
