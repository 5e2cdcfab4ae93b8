"""The pieces of a body: text, bytes or the chunks a body arrived in, read a piece at a time.

A body is read in pieces of about ``PIECE_CHARS`` bytes that end at a line end, joined from the
chunks the body arrived in and decoded one at a time, so a large body is never held twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from deucalion.errors import ParseError

__all__ = [
    "PIECE_CHARS",
    "Body",
    "byte_pieces",
    "decoded",
    "located",
    "pieces",
    "whole_body",
]

#: Bodies are decoded and read in pieces of about this many characters, ending at line ends.
PIECE_CHARS = 1 << 16


Body = str | bytes | bytearray | memoryview | list[bytes]
"""A body: text, bytes, or the list of byte chunks it arrived in (consumed as it is read)."""


def pieces(body: Body) -> Iterator[tuple[int, str]]:
    """The body as (lines before, text) pieces of about ``PIECE_CHARS`` that end at line ends,
    the last one with a "\n" added when missing. Bytes are decoded as UTF-8 a piece at a time;
    a list of chunks is emptied as it is read, so that the body is never held twice."""
    if isinstance(body, str):
        for lines, piece, last in _text_pieces(body):
            yield lines, piece if piece.endswith("\n") or not last else piece + "\n"
        return
    for lines, offset, chunk, last in byte_pieces(body):
        yield lines, decoded(chunk, lines, offset, last)


def decoded(piece: bytes, lines: int, offset: int, last: bool) -> str:
    """A piece from :func:`byte_pieces` as text (with a "\n" added to the last one when
    missing); ParseError naming the byte and line if it is not UTF-8."""
    try:
        text = str(piece, "utf-8")
    except UnicodeDecodeError as exc:
        lineno = lines + piece.count(b"\n", 0, exc.start) + 1
        raise ParseError(f"invalid UTF-8 at byte {offset + exc.start}", lineno) from None
    return text if not last or text.endswith("\n") else text + "\n"


def _text_pieces(body: str) -> Iterator[tuple[int, str, bool]]:
    """(lines before, text, whether it is the last) slices of ``body`` ending at line ends."""
    lines = 0
    size = len(body)
    start = 0
    while start < size:
        end = body.find("\n", start + PIECE_CHARS) + 1 or size
        yield lines, body[start:end], end == size
        if end < size:
            lines += body.count("\n", start, end)
        start = end


def byte_pieces(body: Body) -> Iterator[tuple[int, int, bytes, bool]]:
    """(lines before, bytes before, piece, whether it is the last) pieces of ``body`` of about
    ``PIECE_CHARS`` bytes, undecoded, each ending at a line end (the last one where the body
    ends). A list of chunks is emptied as it is read, so that the body is never held twice;
    a ``bytes`` body of one piece is the piece itself. Text is encoded first."""
    lines = offset = 0
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, list):
        data = body if isinstance(body, bytes | bytearray) else bytes(body)
        size = len(data)
        while offset < size:
            end = data.find(b"\n", offset + PIECE_CHARS) + 1 or size
            piece = data if not offset and end == size and isinstance(data, bytes) else None
            yield lines, offset, piece or bytes(data[offset:end]), end == size
            if end < size:
                lines += data.count(b"\n", offset, end)
            offset = end
        return
    total = sum(map(len, body))
    parts: list[bytes] = []
    size = received = 0
    for chunk in _chunks(body):
        received += len(chunk)
        parts.append(chunk)
        size += len(chunk)
        last = received == total
        if size < PIECE_CHARS and not last:
            continue
        joined = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
        cut = len(joined) if last else joined.rfind(b"\n") + 1
        if cut:
            yield lines, offset, joined if cut == len(joined) else joined[:cut], last
            if not last:
                lines += joined.count(b"\n", 0, cut)
            offset += cut
        carry = joined[cut:]
        parts = [carry] if carry else []
        size = len(carry)


def whole_body(body: Body) -> bytes | None:
    """``body`` as one ``bytes`` when it is one non-empty piece (a list of chunks is then
    joined and emptied), else None."""
    if isinstance(body, bytes):
        return body if 0 < len(body) <= PIECE_CHARS else None
    if isinstance(body, list) and 0 < sum(map(len, body)) <= PIECE_CHARS:
        whole = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        return whole
    return None


def _chunks(body: list[bytes]) -> Iterator[bytes]:
    """The chunks of ``body``, each dropped from it as it is taken (so that the body is never
    held twice)."""
    body.reverse()
    while body:
        yield body.pop()


def located(error: ParseError, lines: int) -> ParseError:
    """``error`` found in a piece after ``lines`` lines, with its line number in the body."""
    if error.lineno is None or not lines:
        return error
    return ParseError(error.reason, error.lineno + lines)
