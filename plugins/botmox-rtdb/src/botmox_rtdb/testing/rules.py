"""The parts of ``database.rules.json`` the emulator honours: ``.indexOn`` for queries and
literal ``true`` for unauthenticated ``.read``/``.write`` at the root."""

from __future__ import annotations

from typing import Any

from botmox_rtdb.testing.tree import InvalidDataError

__all__ = ["LoadedRules", "load_rules"]


class LoadedRules:
    """A validated rules document (``{"rules": {...}}``)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._root: dict[str, Any] = document["rules"]

    def index_fields(self, segments: list[str]) -> frozenset[str]:
        """The ``.indexOn`` entries declared for the location ``segments``.

        Path segments match a rule of the same name, else a ``$variable`` rule.
        """
        node: Any = self._root
        for segment in segments:
            if not isinstance(node, dict):
                return frozenset()
            if segment in node:
                node = node[segment]
                continue
            wildcard = next((k for k in node if k.startswith("$")), None)
            if wildcard is None:
                return frozenset()
            node = node[wildcard]
        if not isinstance(node, dict):
            return frozenset()
        declared = node.get(".indexOn", [])
        return frozenset([declared] if isinstance(declared, str) else declared)

    def public(self, operation: str) -> bool:
        """Whether the root rule for ``.read``/``.write`` is the literal ``true``."""
        return self._root.get(operation) is True


def _check_node(node: Any, where: str) -> None:
    if not isinstance(node, dict):
        raise InvalidDataError(f"rules: {where} must be an object")
    wildcards = [key for key in node if key.startswith("$")]
    if len(wildcards) > 1:
        raise InvalidDataError(f"rules: {where} has more than one $wildcard child")
    for key, value in node.items():
        if key == ".indexOn":
            entries = [value] if isinstance(value, str) else value
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise InvalidDataError(f"rules: {where}/.indexOn must be a string or strings")
        elif key in (".read", ".write", ".validate"):
            if not isinstance(value, bool | str):
                raise InvalidDataError(f"rules: {where}/{key} must be a boolean or expression")
        elif key.startswith("."):
            raise InvalidDataError(f"rules: unknown rule {key!r} at {where}")
        else:
            _check_node(value, f"{where}/{key}")


def load_rules(document: Any) -> LoadedRules:
    """Validate a rules document and return it loaded; :class:`InvalidDataError` if malformed."""
    if not isinstance(document, dict) or set(document) != {"rules"}:
        raise InvalidDataError('rules: the document must be an object with one key, "rules"')
    _check_node(document["rules"], "rules")
    return LoadedRules(document)
