"""The shape of a state file read back from disk (the index's manifest, the feeds file): a file that is valid
JSON but not what we wrote is named for what is wrong, so it can be rebuilt or refused in one line."""
from __future__ import annotations

from collections.abc import Callable


def field_problem(obj: dict, fields: dict[str, type], about: str, non_negative: str = "",
                  show: Callable[[object], str] = repr) -> str | None:
    """What is wrong with the first field of `obj` (described as `about`) that `fields` does not know, or
    that is not of its type, a bool where a number is meant, or below 0 where `non_negative` names it;
    None when every field fits."""
    for key, value in obj.items():
        kind = fields.get(key)
        if kind is None:
            return f"{about} has an unknown field {key!r}"
        if not isinstance(value, kind) or isinstance(value, bool) or (key == non_negative and value < 0):
            return f"{about} has {key!r} {show(value)}"
    return None
