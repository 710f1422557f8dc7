"""The bot lifecycle algorithms (the Bot-Mox contract §1.5) as pure functions over a bot's
stored data: each answers the top-level fields to write on the bot and the log (and archive)
entry to append, or ``None`` when nothing changes. :class:`~botmox_core.services.domains.bots.
BotLifecycleService` writes all of it in one unit of work."""

from __future__ import annotations

import calendar
import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from botmox_core.errors import BadRequestError

__all__ = [
    "LifecycleChange",
    "RESTORABLE",
    "STAGES",
    "ban",
    "ban_timestamp",
    "is_banned",
    "stage_of",
    "transition",
    "unban",
]

STAGES = ("prepare", "leveling", "profession", "farming")
#: Statuses an unban restores to (anything else restores to ``offline``).
RESTORABLE = ("offline", *STAGES)


@attrs.frozen
class LifecycleChange:
    """What one lifecycle action writes.

    Attributes:
        fields: top-level fields of the bot to set (``status``, ``lifecycle``).
        log_type, log_message, log_details: the lifecycle log entry.
        archive: ``(ban_details, snapshot)`` of the ban archive entry, for a ban.
    """

    fields: dict[str, Any]
    log_type: str
    log_message: str
    log_details: dict[str, Any]
    archive: tuple[dict[str, Any], dict[str, Any]] | None = None


def stage_of(status: Any) -> str | None:
    """The lifecycle stage of a status: the four stages map to themselves, others to none."""
    return status if isinstance(status, str) and status in STAGES else None


def _status(bot: Mapping[str, Any]) -> Any:
    status = bot.get("status")
    return "offline" if status is None else status


def _lifecycle(bot: Mapping[str, Any]) -> dict[str, Any]:
    current = bot.get("lifecycle")
    return copy.deepcopy(dict(current)) if isinstance(current, Mapping) else {}


def _transitions(lifecycle: Mapping[str, Any]) -> list[Any]:
    found = lifecycle.get("stage_transitions")
    return list(found) if isinstance(found, list) else []


def is_banned(bot: Mapping[str, Any]) -> bool:
    """``status == "banned"`` or ``lifecycle.current_stage == "banned"``."""
    lifecycle = bot.get("lifecycle")
    stage = lifecycle.get("current_stage") if isinstance(lifecycle, Mapping) else None
    return bot.get("status") == "banned" or stage == "banned"


def transition(bot: Mapping[str, Any], target: str, now: int) -> LifecycleChange | None:
    """Move the bot to status ``target`` (not ``banned``: that is :func:`ban`); ``None`` when
    it already has that status."""
    if target == "banned":
        raise BadRequestError(
            "Use /lifecycle/ban endpoint for ban transitions",
            details=[{"field": "status", "message": "use /lifecycle/ban"}],
        )
    current = _status(bot)
    if current == target:
        return None
    next_stage = stage_of(target) or "prepare"
    lifecycle = _lifecycle(bot)
    transitions = _transitions(lifecycle)
    transitions.append({"from": stage_of(current) or "create", "to": next_stage, "timestamp": now})
    lifecycle.update(
        current_stage=next_stage, previous_status=current, stage_transitions=transitions
    )
    return LifecycleChange(
        {"status": target, "lifecycle": lifecycle},
        "status_change",
        f"Status changed from {current} to {target}",
        {"from": current, "to": target},
    )


def ban_timestamp(ban_date: str, now: int) -> int:
    """``DD.MM.YYYY`` as epoch ms of that day's midnight UTC; ``now`` when it is no date."""
    try:
        day = datetime.strptime(ban_date, "%d.%m.%Y").replace(tzinfo=UTC)
    except ValueError:
        return now
    return calendar.timegm(day.timetuple()) * 1000


def _number(value: Any) -> int | float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def snapshot(bot: Mapping[str, Any]) -> dict[str, Any]:
    """The archive's snapshot of a bot before its ban."""
    character = bot.get("character")
    farm = bot.get("farm")
    monitor = bot.get("monitor")
    character = character if isinstance(character, Mapping) else {}
    farm = farm if isinstance(farm, Mapping) else {}
    monitor = monitor if isinstance(monitor, Mapping) else {}
    shot: dict[str, Any] = {
        "final_level": _number(character.get("level")),
        "total_farmed": _number(farm.get("all_farmed_gold")),
        "total_earned_gold": _number(farm.get("all_earned_gold")),
        "total_runtime_hours": _number(monitor.get("total_runtime_hours")),
    }
    if bot.get("project_id") is not None:
        shot["project_id"] = copy.deepcopy(bot["project_id"])
    if character:
        shot["character"] = copy.deepcopy(dict(character))
    return shot


def ban(bot: Mapping[str, Any], details: Mapping[str, Any], now: int) -> LifecycleChange:
    """Ban the bot with ``details`` (``ban_date, ban_reason, ban_mechanism``, checked). A bot
    already banned can be banned again (another archive entry)."""
    current = _status(bot)
    lifecycle = _lifecycle(bot)
    transitions = _transitions(lifecycle)
    stage = stage_of(current)
    if stage is not None:
        transitions.append({"from": stage, "to": stage, "timestamp": now})
    ban_details = {**details, "ban_timestamp": ban_timestamp(details["ban_date"], now)}
    lifecycle.update(
        current_stage="banned",
        previous_status=current,
        ban_details=ban_details,
        stage_transitions=transitions,
    )
    return LifecycleChange(
        {"status": "banned", "lifecycle": lifecycle},
        "ban",
        f"Bot banned: {details['ban_reason']}",
        {"from": current, "mechanism": details["ban_mechanism"], "ban_date": details["ban_date"]},
        archive=(copy.deepcopy(ban_details), snapshot(bot)),
    )


def unban(bot: Mapping[str, Any], now: int) -> LifecycleChange:
    """Restore a banned bot to its previous status (or ``offline``); 400 ``Bot is not banned``
    unless ``lifecycle.ban_details`` exists (a second unban succeeds: details are kept)."""
    lifecycle = _lifecycle(bot)
    details = lifecycle.get("ban_details")
    if not isinstance(details, Mapping):
        raise BadRequestError("Bot is not banned")
    previous = lifecycle.get("previous_status")
    restored = previous if previous in RESTORABLE else "offline"
    lifecycle.update(
        current_stage=stage_of(restored) or "prepare",
        ban_details={**details, "unbanned_at": now},
    )
    return LifecycleChange(
        {"status": restored, "lifecycle": lifecycle},
        "unban",
        f"Bot unbanned and restored to {restored}",
        {"restored_status": restored},
    )
