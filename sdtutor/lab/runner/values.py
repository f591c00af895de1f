"""Turn a learner's return value into plain JSON values (imported by the child: keep it light)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any


def normalise(value: Any) -> Any:
    """Plain JSON values, so two results can be compared.

    Decimal, UUID → str; dates and times → isoformat; tuples, namedtuples → lists; dict
    keys → str; anything else that is not JSON → its repr.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        finite = value == value and abs(value) != float("inf")
        return value if finite else repr(value)  # JSON has no NaN or infinity
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # namedtuples are tuples
        return [normalise(v) for v in value]
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return repr(value)
