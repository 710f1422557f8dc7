"""``/bots``: the bot collection and the lifecycle routes (``/bots/{id}/lifecycle...``)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.params import FromPath, JSONBody

from botmox_core.domain.records import Collection
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok
from botmox_server.routes.domains.records import _CollectionController

_LIFECYCLE = "/{record_id:str}/lifecycle"


class BotsController(_CollectionController):
    """``/bots`` CRUD and lifecycle."""

    path = "/api/v1/bots"
    collection = Collection.BOTS
    tags = ("bots",)

    @get(_LIFECYCLE, sync_to_thread=True)
    def lifecycle(self, record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """The bot's ``lifecycle`` object, or ``null``; 404 for an unknown bot."""
        return ok(core.domains.bots.lifecycle(principal, record_id))

    @get(_LIFECYCLE + "/transitions", sync_to_thread=True)
    def transitions(self, record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """The bot's stage transitions (``[]`` if none)."""
        return ok(core.domains.bots.transitions(principal, record_id))

    @get(_LIFECYCLE + "/is-banned", sync_to_thread=True)
    def is_banned(self, record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """``{banned: bool}``."""
        return ok(core.domains.bots.is_banned(principal, record_id))

    @post(_LIFECYCLE + "/transition", sync_to_thread=True, status_code=200)
    def transition(
        self, record_id: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """Move the bot to ``{status}`` (not ``banned``): the updated bot, with a log entry."""
        return ok(core.domains.bots.transition(principal, record_id, data))

    @post(_LIFECYCLE + "/ban", sync_to_thread=True, status_code=200)
    def ban(
        self, record_id: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """Ban the bot (``ban_date`` DD.MM.YYYY, ``ban_reason``, ``ban_mechanism``): the updated
        bot; the bot, its archive entry and its log entry are written together."""
        return ok(core.domains.bots.ban(principal, record_id, data))

    @post(_LIFECYCLE + "/unban", sync_to_thread=True, status_code=200)
    def unban(self, record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """Restore a banned bot to its previous status; 400 ``Bot is not banned``."""
        return ok(core.domains.bots.unban(principal, record_id))
