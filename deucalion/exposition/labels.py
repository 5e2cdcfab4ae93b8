"""What a parser remembers of label blocks, and how unsorted label blocks become series keys.

Whether the blocks of a piece have their labels sorted (then a block is its series key as is)
is decided once per piece from the distinct label-name sequences of its blocks, extracted by
splitting the joined blocks at their quotes; blocks written in an unsorted order are reordered
together, per order, by splitting them into pairs and zipping the pairs back in sorted order. A
parser's :class:`LabelMemory` remembers, by the text of a piece's label blocks, what that work
found: a target serves the same label sets scrape after scrape, so the next body costs one
lookup per piece for its keys (the first costs what the work does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import compress, groupby
from operator import itemgetter

from deucalion.errors import ParseError

__all__ = ["LabelMemory", "Orders", "label_order", "sorted_keys", "unescaped"]

_CANON_PAIRS = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*+(?:\\.[^"\\]*+)*+"')

_MAX_ORDERS = 4096
# Up to this many unsorted label orders in a piece, each is found by a pass of its own.
_FEW_ORDERS = 4

#: Label-name sequence of a block ("{a=,b=}") -> None when sorted, else the positions of its
#: pairs in sorted order.
Orders = dict[str, tuple[int, ...] | None]

# Bound of the label blocks a LabelMemory keeps the series keys of, in characters.
_MAX_KEY_CHARS = 1 << 23
# What LabelMemory._keys answers for blocks not seen before.
_UNKNOWN: list[str] = []


class LabelMemory:
    """What a parser remembers of the label blocks of the bodies it read (bounded: past a
    bound a memory is emptied), so that the next body with the same label sets costs less.

    ``orders`` maps each label-name sequence seen (see :data:`Orders`). The series keys of
    the blocks of a piece of a body are remembered by the blocks' text: a target serves the
    same label sets scrape after scrape, and finding its keys by that text is much cheaper
    than reading and sorting the blocks again. Values are never part of it.
    """

    __slots__ = ("_chars", "_keys", "orders", "plans", "splits")

    def __init__(self) -> None:
        self.orders: Orders = {}
        #: The OpenMetrics bulk reader's splits of series keys around a label (by label, then
        #: key): the key without it, and its value (bounded by that reader).
        self.splits: dict[str, dict[str, tuple[str, str]]] = {}
        #: The OpenMetrics bulk reader's plans of the bodies it read, by their structure.
        self.plans: dict[object, object] = {}
        self._keys: dict[str, list[str] | None] = {}
        self._chars = 0

    def series_keys(self, matches: Sequence[tuple[str, ...]], block: int) -> list[str] | None:
        """None when every label block of ``matches`` (item ``block`` of each, braces
        included, "" for none) is sorted, so that a block is its series key; else the series
        key of each (not to be changed: it is remembered). Raises ParseError on a duplicate
        or reserved label name."""
        blocks = "\n".join(map(itemgetter(block), matches))
        keys = self._keys.get(blocks, _UNKNOWN)
        if keys is not _UNKNOWN:
            return keys
        sequences = _sequences(blocks, self.orders)
        if sequences is not None:
            keys = [key or "{}" for key in map(itemgetter(block), matches)]
            _sort_keys(keys, sequences, self.orders)
        else:
            keys = None
        if self._chars + len(blocks) > _MAX_KEY_CHARS:
            self._keys.clear()
            self._chars = 0
        self._keys[blocks] = keys
        self._chars += len(blocks)
        return keys


def _sequences(blocks: str, orders: Orders) -> list[str] | None:
    """None when every block of ``blocks`` (label blocks joined by "\n") has its labels
    sorted; else each block's label-name sequence (as ``orders`` keys, now all known). Raises
    ParseError on a duplicate or reserved label name."""
    if '",' not in blocks:  # no block of two labels or more
        return None
    # Once escaped backslashes and quotes are out of the way, every other piece between quotes
    # is a value: splitting there is cheaper than a regular expression.
    sequences = "".join(unescaped(blocks).split('"')[::2]).split("\n")
    unsorted = False
    for sequence in set(sequences):
        order = orders.get(sequence, False)
        if order is False:
            order = label_order(sequence)
            if len(orders) >= _MAX_ORDERS:
                orders.clear()
            orders[sequence] = order
        unsorted = unsorted or order is not None
    return sequences if unsorted else None


def unescaped(blocks: str) -> str:
    """Canonical ``blocks`` with each escaped backslash and quote replaced by a control
    character, so that every quote left delimits a value (the label names are unchanged)."""
    if "\\" not in blocks:
        return blocks
    return blocks.replace("\\\\", "\x01").replace('\\"', "\x02")


def label_order(sequence: str) -> tuple[int, ...] | None:
    """None when the label names of ``sequence`` ("{a=,b=}") are sorted, else the positions of
    the pairs in sorted order. Raises ParseError on a duplicate or reserved name."""
    labels = sequence[1:-2].split("=,") if len(sequence) > 2 else []
    if len(set(labels)) != len(labels):
        raise ParseError("duplicate label name")
    if any(label.startswith("__") for label in labels):
        raise ParseError("reserved label name")
    permutation = tuple(sorted(range(len(labels)), key=labels.__getitem__))
    return None if permutation == tuple(range(len(labels))) else permutation


def sorted_keys(blocks: list[str], sequence: str, order: tuple[int, ...]) -> list[str]:
    """The series keys of canonical ``blocks`` that share one unsorted label-name ``sequence``
    ("{b=,a=}"), ``order`` giving the positions of their labels in sorted order.

    Done for all the blocks at once, in C: joined and split at the quotes, the values taken
    column by column in sorted order and written back into a template of the sorted names.
    """
    joined = "\n".join(blocks)
    escaped = "\\" in joined
    if escaped:
        if "\x01" in joined or "\x02" in joined:
            # The stand-ins for escapes are in the values themselves: one block at a time.
            reorder = itemgetter(*order)
            return ["{" + ",".join(reorder(_CANON_PAIRS.findall(block))) + "}" for block in blocks]
        # An escaped quote would be split on: it stands aside meanwhile.
        joined = unescaped(joined)
    labels = sequence[1:-2].split("=,")
    width = len(order)
    values = joined.split('"')[1::2]
    template = "{" + ",".join(f'{labels[i]}="%s"' for i in order) + "}"
    keys = list(map(template.__mod__, zip(*[values[i::width] for i in order], strict=True)))
    if escaped:
        return "\n".join(keys).replace("\x02", '\\"').replace("\x01", "\\\\").split("\n")
    return keys


def _sort_keys(keys: list[str], sequences: list[str], orders: Orders) -> None:
    """Put in ``keys`` the sorted spelling of every block whose label-name sequence (the same
    place in ``sequences``) is unsorted, per sequence in bulk."""
    unsorted = [s for s in set(sequences) if orders.get(s) is not None]
    if len(unsorted) <= _FEW_ORDERS:
        # A pass over the sequences per unsorted one, in C.
        groups: Iterable[tuple[str, Iterable[int]]] = (
            (s, compress(range(len(keys)), map(s.__eq__, sequences))) for s in unsorted
        )
    else:
        # Many (a stateset family's state label sorts by its family's name): one sort.
        wanted = set(unsorted)
        lines = sorted(
            compress(range(len(keys)), map(wanted.__contains__, sequences)),
            key=sequences.__getitem__,
        )
        groups = groupby(lines, key=sequences.__getitem__)
    for sequence, group in groups:
        lines = list(group)
        order = orders[sequence]
        assert order is not None
        for line, key in zip(
            lines, sorted_keys([keys[i] for i in lines], sequence, order), strict=True
        ):
            keys[line] = key
