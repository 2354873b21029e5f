"""Read the parts of a SCIP index (`index.scip`) that the extractor uses.

SCIP is a protobuf message, `scip.Index`, published as `scip.proto` in the sourcegraph/scip
repository. This module decodes the protobuf wire format directly, for exactly these fields
(numbers from that schema):

    Index.documents = 2                    (Index.metadata = 1 and external_symbols = 3 skipped)
    Document.relative_path = 1, Document.occurrences = 2  (symbols = 3, text = 5 ... skipped)
    Occurrence.range = 1 (repeated int32: [line, col, end_col] or [line, col, end_line, end_col],
        0-based), Occurrence.symbol = 2, Occurrence.symbol_roles = 3 (bit 0x1: a definition)

Why a reader and not generated `scip_pb2.py`: five fields of three messages are all the
extractor needs, and the wire format (varints and length-delimited fields) takes some fifty
lines to read. Generated code would add a vendored schema, a protoc/grpcio-tools step to
regenerate it, and a pin of the protobuf runtime that generated code checks at import (its
gencode/runtime version guard), for a stage whose default path must not load any of it.
Unknown fields are skipped by wire type, as protobuf requires, so newer indexers' additions
do not break it; a malformed index raises `ScipFormatError`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFINITION = 0x1  # SymbolRole.Definition


class ScipFormatError(ValueError):
    """The bytes are not a well-formed SCIP index."""


@dataclass(frozen=True)
class Occurrence:
    line: int  # 0-based, as in SCIP
    start_col: int
    end_col: int  # on `line` (the start line for a multi-line range)
    symbol: str
    roles: int

    @property
    def is_definition(self) -> bool:
        return bool(self.roles & DEFINITION)


@dataclass(frozen=True)
class Document:
    path: str  # relative to the indexed root, `/`-separated
    occurrences: list[Occurrence]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ScipFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ScipFormatError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a message: an int for varints, bytes for
    length-delimited fields; fixed 32/64-bit fields are skipped (SCIP's fields use neither)."""
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ScipFormatError("length-delimited field runs past the end")
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ScipFormatError(f"unsupported wire type {wire}")
    if pos != end:
        raise ScipFormatError("message runs past the end")
    return out


def _int32(value: int) -> int:
    """A varint-encoded int32 (negative values are sign-extended to 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _occurrence(buf: bytes) -> Occurrence | None:
    rng: list[int] = []
    symbol, roles = "", 0
    for number, wire, value in _fields(buf):
        if number == 1:
            if wire == 2:  # packed
                pos = 0
                while pos < len(value):  # type: ignore[arg-type]
                    v, pos = _varint(value, pos)  # type: ignore[arg-type]
                    rng.append(_int32(v))
            else:
                rng.append(_int32(value))  # type: ignore[arg-type]
        elif number == 2 and wire == 2:
            symbol = value.decode("utf-8", errors="replace")  # type: ignore[union-attr]
        elif number == 3 and wire == 0:
            roles = _int32(value)  # type: ignore[arg-type]
    if len(rng) not in (3, 4) or not symbol:
        return None  # a highlighting-only occurrence, or a malformed range
    return Occurrence(rng[0], rng[1], rng[-1], symbol, roles)


def read_index(data: bytes) -> list[Document]:
    """The documents of a serialised `scip.Index`, with their symbol occurrences."""
    docs: list[Document] = []
    for number, wire, value in _fields(data):
        if number != 2 or wire != 2:
            continue
        path, occurrences = "", []
        for n, w, v in _fields(value):  # type: ignore[arg-type]
            if n == 1 and w == 2:
                path = v.decode("utf-8", errors="replace")  # type: ignore[union-attr]
            elif n == 2 and w == 2:
                occ = _occurrence(v)  # type: ignore[arg-type]
                if occ is not None:
                    occurrences.append(occ)
        if path:
            docs.append(Document(path, occurrences))
    return docs


def descriptor_name(symbol: str) -> str:
    """The name of a global symbol's last descriptor (`pkg/mod/Cls#meth().` -> `meth`).

    Descriptor grammar (scip.proto, `Symbol`): namespace `name/`, type `name#`, term `name.`,
    meta `name:`, macro `name!`, method `name(disambiguator).`, type parameter `[name]`,
    parameter `(name)`; a name with other characters is backquoted, a backquote doubled.
    Returns "" for local symbols and names that do not parse.
    """
    if symbol.startswith("local "):
        return ""
    s = symbol
    if s.endswith(")."):  # method: strip the disambiguator
        depth_start = s.rfind("(", 0, len(s) - 2)
        if depth_start < 0:
            return ""
        s = s[:depth_start]
    elif s.endswith(("/", "#", ".", ":", "!")):
        s = s[:-1]
    elif s.endswith((")", "]")):
        opener = "(" if s.endswith(")") else "["
        start = s.rfind(opener)
        return s[start + 1 : -1] if start >= 0 else ""
    else:
        return ""
    if s.endswith("`"):
        i = len(s) - 2
        while i >= 0:
            if s[i] == "`":
                if i > 0 and s[i - 1] == "`":
                    i -= 2
                    continue
                return s[i + 1 : -1].replace("``", "`")
            i -= 1
        return ""
    i = len(s)
    while i > 0 and (s[i - 1].isalnum() or s[i - 1] in "_+-$"):
        i -= 1
    return s[i:]
