"""`--rehearse`: run deploy.sql's atomic head and end it with ROLLBACK instead of its COMMIT.

A pull request can then prove a deploy (migrations, then the `CALL pgmi_test()` gate)
against a real staging or production database without changing it. Only the head can be
rehearsed: it is sent as one message, so it is one transaction that ROLLBACK undoes
(PostgreSQL also rolls back an implicit multi-statement transaction on ROLLBACK). Tail
units autocommit one by one (sqllex.split_units), so a script that has any is refused up
front, before a connection is opened, with the reason.

What a rehearsal cannot undo is what no transaction undoes: sequence increments,
`dblink`/foreign writes, NOTIFY is dropped (good), files written by COPY TO PROGRAM.
"""

from __future__ import annotations

from pgmilib import sqllex
from pgmilib.errors import ConfigError

ROLLBACK = "ROLLBACK;"


def check_request(*, overwrite: bool, ephemeral: bool) -> None:
    """Flags that contradict a rehearsal (a rehearsal must not change the server)."""
    if overwrite:
        raise ConfigError("--rehearse cannot be combined with --overwrite: a rehearsal must not change the database, "
                          "and --overwrite drops and recreates it")
    if ephemeral:
        raise ConfigError("--rehearse cannot be combined with --ephemeral: --ephemeral already deploys into a "
                          "throwaway server; use one or the other")


def refuse_tail(script: str) -> None:
    """ConfigError when `script` (deploy.sql) has statements after its first top-level terminator."""
    units = sqllex.split_units(script)
    if len(units) <= 1:
        return
    tail = units[1:]
    error = ConfigError(
        f"--rehearse cannot rehearse this deploy.sql: it has {len(tail)} statement(s) after its first "
        f"COMMIT (from line {tail[0].start_line}), and those autocommit one by one, so they cannot be rolled back")
    error.trailer.append("hint: use --ephemeral to try the whole script against a throwaway server, or move "
                         "those statements into the transaction before the first COMMIT")
    raise error


def head_as_rehearsal(head: str) -> str:
    """The head with its transaction terminator (COMMIT/END/ROLLBACK...) replaced by ROLLBACK.

    Text before the terminator is untouched, so server error positions keep pointing at the
    script's lines. A head without a terminator (the whole script is one implicit
    transaction) gets ROLLBACK appended on a line of its own.
    """
    span = terminator_span(head)
    if span is None:
        return head + "\n;\n" + ROLLBACK
    start, _ = span
    return head[:start] + " " + ROLLBACK


def terminator_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the first top-level transaction terminator statement of `text`, or None."""
    masked = sqllex.mask(text)
    previous = 0
    # _statement_ends knows SQL-standard BEGIN ATOMIC ... END bodies, whose END is no terminator.
    for end in sqllex._statement_ends(masked, 0):
        if sqllex.is_terminator(masked[previous:end - 1]):
            return previous, end
        previous = end
    if sqllex.is_terminator(masked[previous:]):
        return previous, len(masked)
    return None


def rehearse_units(units: list[sqllex.Unit]) -> list[sqllex.Unit]:
    """The units to send for a rehearsal: only the head, ending in ROLLBACK."""
    if len(units) > 1:  # checked up front on deploy.sql; expanded test macros never add a terminator
        raise ConfigError("--rehearse: the expanded deploy.sql has statements after its first COMMIT")
    head = units[0]
    return [sqllex.Unit(head_as_rehearsal(head.text), head.ordinal, head.start_line, head.start_offset)]
