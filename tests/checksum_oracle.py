"""The normalized checksum's rules (the spec's step A table, Go's whitespace set), transcribed
plainly, one byte or code point at a time: the oracle the fast implementation in
pgmilib/project/checksums.py is tested against. Slow on purpose; nothing here is shared with it.
"""

from __future__ import annotations

import hashlib

GO_SPACES = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def spec_collapse(data: bytes) -> bytes:
    """Steps B and C on UTF-8 bytes: every run of GO_SPACES code points -> one space, then trim."""
    out, in_space = [], False
    for ch in data.decode("utf-8", "surrogateescape"):
        if ch in GO_SPACES:
            if not in_space:
                out.append(" ")
            in_space = True
        else:
            out.append(ch)
            in_space = False
    return "".join(out).strip(" ").encode("utf-8", "surrogateescape")


def spec_step_a(data: bytes) -> bytes:
    """The normalization's step A (comments out, case folded outside quotes), transcribed state by state, one byte at a time (slow, plain)."""
    out, i, n = bytearray(), 0, len(data)
    ident = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$")
    while i < n:
        b = data[i]
        if data.startswith(b"--", i):
            out += b" "
            i += 2
            while i < n and data[i] != 0x0A:
                if data.startswith(b"\r\n", i):
                    break
                i += 1
            if data.startswith(b"\r\n", i):
                out += b"\r\n"
                i += 2
            elif i < n:
                out += b"\n"
                i += 1
        elif data.startswith(b"/*", i):
            out += b" "
            depth, i = 1, i + 2
            while i < n and depth:
                if data.startswith(b"/*", i):
                    depth, i = depth + 1, i + 2
                elif data.startswith(b"*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif b == 0x27:
            escape = i >= 1 and data[i - 1] in b"Ee" and (i == 1 or (data[i - 2] not in ident and data[i - 2] < 0x80))
            out.append(b)
            i += 1
            while i < n:
                if escape and data[i] == 0x5C:
                    out += data[i:i + 2]
                    i += 2
                elif data.startswith(b"''", i):
                    out += b"''"
                    i += 2
                elif data[i] == 0x27:
                    out.append(0x27)
                    i += 1
                    break
                else:
                    out.append(data[i])
                    i += 1
        elif b == 0x22:
            out.append(b)
            i += 1
            while i < n:
                if data.startswith(b'""', i):
                    out += b'""'
                    i += 2
                elif data[i] == 0x22:
                    out.append(0x22)
                    i += 1
                    break
                else:
                    out.append(data[i])
                    i += 1
        elif b == 0x24:
            tag_end = i + 1
            if tag_end < n and (chr(data[tag_end]).isascii() and (chr(data[tag_end]).isalpha() or data[tag_end] == 0x5F)):
                tag_end += 1
                while tag_end < n and chr(data[tag_end]).isascii() and (chr(data[tag_end]).isalnum()
                                                                         or data[tag_end] == 0x5F):
                    tag_end += 1
            if tag_end < n and data[tag_end] == 0x24:
                tag = data[i:tag_end + 1]
                close = data.find(tag, tag_end + 1)
                end = n if close < 0 else close + len(tag)
                out += data[i:end]
                i = end
            else:
                out.append(b)
                i += 1
        else:
            out.append(b + 32 if 0x41 <= b <= 0x5A else b)
            i += 1
    return bytes(out)


def spec_checksum(data: bytes) -> str:
    """The normalized checksum by the transcription: SHA-256 of steps A to C."""
    return hashlib.sha256(spec_collapse(spec_step_a(data))).hexdigest()
