"""How an observer's data travels to its worker process: series keys once, values every call.

A target's series rarely change from one cycle to the next, but building their label strings
again in the worker is most of what a hand-off costs. So the application sends, per target and
sample name, the series keys only when they differ from the last call's, and every value as one
array of doubles; the worker keeps the keys it was last sent and rebuilds the dicts.

Both sides live here and import the standard library only: the worker imports this module.
bench_dispatch measures it inside the executor call (issue 12): it halves the hand-off of
10,000 series and more, so it stays.
"""

from __future__ import annotations

import marshal
from array import array
from typing import Any

__all__ = ["LayoutError", "PayloadEncoder", "decode", "release"]

Key = tuple[str, str]
# (target, sample name or None for a target without samples, series keys or None if unchanged)
Entry = tuple[str, str | None, tuple[str, ...] | None]


class LayoutError(LookupError):
    """The worker lacks series keys the application thinks it sent (a new worker, say)."""


class PayloadEncoder:
    """The application's side: remembers what the worker was last sent."""

    def __init__(self) -> None:
        self._sent: dict[Key, tuple[str, ...]] = {}
        self._stale: object = None

    def reset(self) -> None:
        """Forget what was sent: the next payload carries every key (for a new worker)."""
        self._sent = {}

    def release(self) -> None:
        """Free the keys the last ``encode`` replaced; call it once the payload is on its way,
        so that freeing many old keys does not delay the hand-off."""
        self._stale = None

    def encode(self, data: dict[str, dict[str, dict[str, float]]]) -> bytes:
        """The payload for ``data``; it must reach the worker before the next one is made."""
        entries: list[Entry] = []
        values = array("d")
        sent, previous = {}, self._sent
        for target, samples in data.items():
            if not samples:
                entries.append((target, None, None))
                continue
            for name, series in samples.items():
                keys = tuple(series)
                key = (target, name)
                entries.append((target, name, None if previous.get(key) == keys else keys))
                sent[key] = keys
                values.extend(series.values())
        # Only what this payload names is kept, so targets that are gone are forgotten.
        self._stale, self._sent = previous, sent
        return marshal.dumps((entries, values.tobytes()))


_layouts: dict[Key, tuple[str, ...]] = {}
# The keys the last decode replaced, freed by ``release`` after new_data has started.
_stale: object = None


def release() -> None:
    """Free the keys the last ``decode`` replaced (the worker calls it after ``new_data``)."""
    global _stale
    _stale = None


def decode(payload: bytes) -> dict[str, dict[str, dict[str, float]]]:
    """The worker's side: the data ``payload`` carries (and remember its keys)."""
    global _layouts, _stale
    entries, raw = marshal.loads(payload)
    values = array("d")
    values.frombytes(raw)
    data: dict[str, dict[str, Any]] = {}
    layouts: dict[Key, tuple[str, ...]] = {}
    position = 0
    for target, name, keys in entries:
        samples = data.setdefault(target, {})
        if name is None:
            continue
        if keys is None:
            keys = _layouts.get((target, name))
            if keys is None:
                raise LayoutError(f"no series keys for {name} of {target}")
        layouts[(target, name)] = keys
        end = position + len(keys)
        samples[name] = dict(zip(keys, values[position:end], strict=True))
        position = end
    _stale, _layouts = _layouts, layouts
    return data
