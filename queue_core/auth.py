"""Bearer credentials and who may do what (pure, no HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Final

from queue_core.config import Credential
from queue_core.errors import Forbidden, Unauthorized, Unavailable
from queue_core.models import Role

LEGACY_ID: Final = re.compile(r"(?:kiosk|clerk|manager|admin|display):[0-9a-f]{16}")
"""A `Credential.digest_id`, as tickets recorded their clerk before labels."""


class Credentials:
    """Looks up a presented token among a hall's credentials.

    Tokens are compared by their SHA-256 digest: the lookup is keyed on the
    digest of what was presented, so its timing tells an attacker nothing
    about any stored token, and a final `hmac.compare_digest` confirms the
    match in constant time. Only digests are ever held in memory.
    """

    def __init__(self, credentials: Iterable[Credential], secret: bytes | None = b"") -> None:
        found = tuple(credentials)
        self._by_digest = {c.token_sha256: c for c in found}
        self._by_digest_id = {c.digest_id: c for c in found}
        self._secret = secret
        self._labels: dict[str, str] = {}

    def set_secret(self, secret: bytes) -> None:
        """The deployment's audit key, once read (the app reads it from Redis,
        which may be down when qms starts)."""
        self._secret = secret
        self._labels.clear()

    def label(self, credential: Credential) -> str:
        """Who a credential is in audit entries and reports: its `name`, else
        its role and a short id keyed with the deployment's secret (an HMAC,
        not the token's plain hash: a weak token must not be recoverable
        from a report)."""
        if credential.name:
            return credential.name
        label = self._labels.get(credential.token_sha256)
        if label is None:
            label = self._labels[credential.token_sha256] = self._keyed(
                credential.role.value, credential.token_sha256
            )
        return label

    def relabel(self, recorded: str) -> str:
        """A clerk or actor as a ticket or an audit entry recorded it, as it
        may leave the process. A label passes as it is. A credential id of
        the kind tickets recorded before labels (`Credential.digest_id`,
        `role:<16 hex of the token's SHA-256>`) becomes the label of the
        configured credential it names, else its role and a short id keyed
        like a label. Without the deployment's secret (a report read from
        the archive alone), an unnamed credential's becomes its role alone."""
        if not LEGACY_ID.fullmatch(recorded):
            return recorded
        role = recorded.partition(":")[0]
        credential = self._by_digest_id.get(recorded)
        if credential is not None and credential.name:
            return credential.name
        if self._secret is None:
            return role
        return self.label(credential) if credential else self._keyed(role, recorded)

    def _keyed(self, role: str, material: str) -> str:
        """`role-<8 hex>`: the first 8 hex digits of an HMAC-SHA256 of
        `material` under the deployment's secret."""
        if self._secret is None:
            raise Unavailable(
                "redis_unavailable", "The queue store cannot be reached right now; try again."
            )
        mac = hmac.new(self._secret, material.encode(), hashlib.sha256)
        return f"{role}-{mac.hexdigest()[:8]}"

    def find(self, token: str | None) -> Credential | None:
        if not token:
            return None
        try:
            raw = token.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (JSON can carry one, as a screen's first
            # message may): no configured token is one, so none matches.
            return None
        digest = hashlib.sha256(raw).hexdigest()
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(found.token_sha256, digest):
            return None
        return found


def authorize(
    credential: Credential | None,
    roles: frozenset[Role],
    *,
    clerk_window: str | None = None,
) -> Credential:
    """Return the credential if it may act, else raise 401/403-kind errors.

    A clerk acting on a window must have that window on its credential;
    other roles in `roles` may act on any window."""
    if credential is None:
        raise Unauthorized("unauthorized", "A valid bearer token is required.")
    if credential.role not in roles:
        raise Forbidden("forbidden", f"The {credential.role.value} role may not do this.")
    if (
        clerk_window is not None
        and credential.role is Role.CLERK
        and clerk_window not in credential.windows
    ):
        raise Forbidden("window_forbidden", f"This clerk may not operate window {clerk_window}.")
    return credential


def idempotency_scope(hall: str, credential_id: str, path: str, key: str) -> str:
    """The digest naming a retried request: a key is scoped to the hall, the
    credential and the operation's path, so two kiosks cannot collide."""
    raw = "\x00".join((hall, credential_id, path, key)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()
