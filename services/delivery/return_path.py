"""The envelope sender (return path) of each outgoing message: where its bounce will go.

With ``[bounces] verp = true`` every message carries its own return path, ``bounces+<token>@domain``
(Variable Envelope Return Paths, D. J. Bernstein's scheme; Postfix's ``verp_sender`` builds
``prefix+user=domain@origin`` the same way and its ``recipient_delimiter = +`` delivers
``bounces+anything@domain`` to the ``bounces`` mailbox). A bounce then names the message it is about
in the address it was sent to, whatever shape its body has. The token is the delivery item's id
and the first characters of the SHA-256 of the message's Message-ID: an old token (the family
was sent its package again since) matches no current message, and a token cannot be guessed from
an item id alone. Without VERP the envelope sender is the ``[bounces] address`` (or the From
address) and bounces are matched by the Message-ID they quote (``services.bounces``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from services.core.errors import InvalidInput
from services.core.settings import Settings

DIGEST_LENGTH = 10
_TOKEN = re.compile(rf"^(\d{{1,12}})\.([0-9a-f]{{{DIGEST_LENGTH}}})$")


def digest(message_id: str) -> str:
    """The part of a token that ties it to one message."""
    return hashlib.sha256(message_id.strip().encode()).hexdigest()[:DIGEST_LENGTH]


@dataclass(frozen=True)
class ReturnPath:
    """The ``address`` and ``verp`` keys of ``[bounces]``."""

    address: str = ""  # the bounce mailbox's address; "" = the From address
    verp: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ReturnPath:
        section = settings.extra.get("bounces") or {}
        if not isinstance(section, dict):
            raise InvalidInput("The [bounces] configuration must be a table of keys")
        address = str(section.get("address", "") or "").strip()
        verp = section.get("verp", False)
        if not isinstance(verp, bool):
            raise InvalidInput("[bounces] verp must be true or false")
        if address and (address.count("@") != 1 or "+" in address.partition("@")[0]):
            raise InvalidInput(
                f"[bounces] address {address!r} must be one plain address like bounces@district.org"
            )
        if verp and not address:
            raise InvalidInput("[bounces] verp = true needs the bounce mailbox's address")
        return cls(address, verp)

    def for_message(self, item_id: int, message_id: str, sender: str) -> str:
        """The envelope sender of item ``item_id``'s message ``message_id`` (``sender``: From)."""
        if not self.verp:
            return self.address or sender
        local, _, domain = self.address.partition("@")
        return f"{local}+{item_id}.{digest(message_id)}@{domain}"

    def token_of(self, recipient: str) -> tuple[int, str] | None:
        """(item id, digest) from an address a bounce was sent to, if it is one of ours."""
        if not self.address:
            return None
        local, _, domain = recipient.strip().strip("<>").lower().rpartition("@")
        mine_local, _, mine_domain = self.address.lower().partition("@")
        base, plus, token = local.partition("+")
        if domain != mine_domain or base != mine_local or not plus:
            return None
        found = _TOKEN.match(token)
        return (int(found.group(1)), found.group(2)) if found else None
