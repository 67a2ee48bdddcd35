"""The store: every read and write of Kopers' state goes through here.

It is the only caller of SQL (kept in sql/queries/). It turns rows into the
frozen dataclasses of `kopers.models` and database errors into
`KopersError`s. Each concept's part lives in its own module.
"""

from __future__ import annotations

from kopers.db.accounts import AccountStore, TokenRecord
from kopers.db.builds import BuildStore, NewBuild
from kopers.db.forks import ForkStore
from kopers.db.notifications import NotificationStore
from kopers.db.packages import PackageStore
from kopers.db.permissions import PermissionStore
from kopers.db.projects import ProjectStore
from kopers.db.rebuilds import RebuildStore
from kopers.db.webhooks import WebhookStore
from kopers.db.websessions import WebSessionStore

__all__ = ["NewBuild", "Store", "TokenRecord"]


class Store(
    AccountStore,
    ProjectStore,
    PackageStore,
    BuildStore,
    PermissionStore,
    ForkStore,
    RebuildStore,
    WebhookStore,
    NotificationStore,
    WebSessionStore,
):
    """All parts of the store over one pool."""
