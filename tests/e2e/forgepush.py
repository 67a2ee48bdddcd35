"""A push delivery as GitHub sends it, signed with a webhook secret, and its POST.

Computed here with the standard library, not with Kopers' own code, so the
server's check is tested against an independent signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request


def github_push(clone_url: str, commit: str, changed: str) -> bytes:
    """A push of `commit` to main that modified the file `changed`."""
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": "0" * 40,
            "after": commit,
            "deleted": False,
            "repository": {"clone_url": clone_url},
            "commits": [{"id": commit, "added": [], "modified": [changed]}],
        }
    ).encode()


def signed(body: bytes, key: str, delivery: str) -> dict[str, str]:
    """GitHub's headers for `body`: a push event, its delivery id and HMAC-SHA256 signature."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def deliver(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST the delivery; the answer's status and body (4xx and 5xx included)."""
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
