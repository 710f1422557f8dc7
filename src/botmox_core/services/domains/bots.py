"""Bot lifecycle: read a bot's lifecycle, move it between statuses, ban and unban it.

Each write is one unit of work: the bot's new fields, the lifecycle log entry and (for a ban)
the archive entry are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from botmox_core.domain.patching import apply_patch
from botmox_core.domain.records import (
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
    new_record_id,
)
from botmox_core.errors import NotFoundError
from botmox_core.services.domains import lifecycle as algorithms
from botmox_core.services.domains.base import DomainService, record_id
from botmox_core.services.domains.entities import BOT, BOT_STATUSES, ban_body
from botmox_core.services.domains.records import check_size
from botmox_core.services.domains.rules import choice, clean_json, obj
from botmox_core.services.principal import Principal

__all__ = ["BotLifecycleService"]

_TRANSITION_BODY = obj(
    {"status": choice(*BOT_STATUSES)},
    required=("status",),
    empty_message="Transition payload must not be empty",
)


class BotLifecycleService(DomainService):
    """The ``/bots/{id}/lifecycle`` routes."""

    def _bot(self, principal: Principal, raw_id: Any) -> dict[str, Any]:
        rid = record_id(raw_id)
        with (uow := self._read_unit()):
            record = uow.records.get(principal.tenant_id, Collection.BOTS, rid)
        if record is None:
            raise NotFoundError(BOT.not_found)
        return dict(record.data)

    def lifecycle(self, principal: Principal, raw_id: Any) -> Any:
        """The bot's ``lifecycle`` object, or ``None``."""
        return self._bot(principal, raw_id).get("lifecycle")

    def transitions(self, principal: Principal, raw_id: Any) -> list[Any]:
        """The bot's ``lifecycle.stage_transitions`` (``[]`` if none)."""
        found = self._bot(principal, raw_id).get("lifecycle")
        stages = found.get("stage_transitions") if isinstance(found, dict) else None
        return stages if isinstance(stages, list) else []

    def is_banned(self, principal: Principal, raw_id: Any) -> dict[str, bool]:
        """``{banned: bool}``."""
        return {"banned": algorithms.is_banned(self._bot(principal, raw_id))}

    def transition(self, principal: Principal, raw_id: Any, body: Any) -> dict[str, Any]:
        """Move the bot to ``body.status``; the bot unchanged when it already has it."""
        status = _TRANSITION_BODY(clean_json(body, ""), "")["status"]
        return self._apply(
            principal, raw_id, lambda data, now: algorithms.transition(data, status, now)
        )

    def ban(self, principal: Principal, raw_id: Any, body: Any) -> dict[str, Any]:
        """Ban the bot (``ban_date`` DD.MM.YYYY, ``ban_reason``, ``ban_mechanism``)."""
        fields = ban_body()(clean_json(body, ""), "")
        details = {name: fields[name] for name in ("ban_date", "ban_reason", "ban_mechanism")}
        return self._apply(principal, raw_id, lambda data, now: algorithms.ban(data, details, now))

    def unban(self, principal: Principal, raw_id: Any) -> dict[str, Any]:
        """Restore a banned bot; 400 ``Bot is not banned`` when it has no ban details."""
        return self._apply(principal, raw_id, algorithms.unban)

    def _apply(
        self,
        principal: Principal,
        raw_id: Any,
        action: Callable[[dict[str, Any], int], algorithms.LifecycleChange | None],
    ) -> dict[str, Any]:
        rid = record_id(raw_id)
        now = self.now_ms()
        done: list[algorithms.LifecycleChange] = []

        def change(current: DomainRecord) -> DomainRecord:
            done.clear()
            result = action(dict(current.data), now)
            if result is None:
                return current
            done.append(result)
            data = apply_patch(current.data, result.fields)
            data.setdefault("created_at", now)
            data["updated_at"] = now
            check_size(data)
            return attrs.evolve(current, data=data)

        tenant = principal.tenant_id
        with (uow := self._unit()):
            stored = uow.records.modify(tenant, Collection.BOTS, rid, change)
            if stored is None:
                raise NotFoundError(BOT.not_found)
            if done:
                result = done[0]
                if result.archive is not None:
                    ban_details, shot = result.archive
                    uow.bot_history.append_archive(
                        ArchiveEntry(
                            tenant, new_record_id(now), rid, "banned", now, ban_details, shot
                        )
                    )
                uow.bot_history.append_log(
                    LifecycleLogEntry(
                        tenant,
                        new_record_id(now),
                        rid,
                        result.log_type,
                        result.log_message,
                        now,
                        result.log_details,
                    )
                )
            uow.commit()
        return dict(stored.entity())
