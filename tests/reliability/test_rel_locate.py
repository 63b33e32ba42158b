"""The locator corpus: one broken statement per generated project, the report must name its line.

Each case (corpus.py) loads its files into a session table on the real server and runs its
deploy.sql through `execute.run_units`, the code pgmi deploys with, so the report is the one
a user would see. Counted: the file right, the line right (certain `FILE:` or a `CANDIDATE:`),
a wrong line, nothing. Never allowed: a wrong file, or a wrong line presented as certain.
Targets: every file right, at least 95 % of the lines. The shares are printed with the
reliability figures and written down in docs/RELIABILITY.md.
"""

from __future__ import annotations

import io

import pytest
from corpus import make_case
from harness import FIGURES, FULL, SEED, scale

from pgmilib.deploy.execute import run_units
from pgmilib.errors import ExecutionFailed
from pgmilib.output import Output, format_error
from pgmilib.sqllex import split_units

CASES = scale(120, 1200)
LINE_TARGET = 0.95


@pytest.fixture
def session(pg, fresh_db):
    import pg8000.native

    conn = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        conn.run("CREATE TEMP TABLE corpus_files (path text PRIMARY KEY, content text NOT NULL)")
        yield conn
    finally:
        conn.close()


def _run(conn, case) -> ExecutionFailed | None:
    conn.run("TRUNCATE pg_temp.corpus_files")
    for path, content in case.files.items():
        conn.run("INSERT INTO pg_temp.corpus_files VALUES (:p, :c)", p=path, c=content)
    out = Output(stdout=io.StringIO(), stderr=io.StringIO())
    conn.run("SET client_min_messages = warning")
    try:
        run_units(conn, split_units(case.deploy), out=out, script_text=case.deploy, script_expanded=False,
                  files=case.files)
    except ExecutionFailed as failure:
        conn.run("ROLLBACK")  # deploy.sql's BEGIN left the failed transaction open (pgmi ends the session)
        return failure
    return None


def test_broken_statements_are_located(session):
    counts = {"cases": 0, "exact": 0, "candidate": 0, "wrong line": 0, "file only": 0, "no file": 0}
    wrong: list[str] = []
    kinds: dict[str, list[int]] = {}
    for number in range(CASES):
        seed = SEED * 10_000 + number
        case = make_case(seed)
        failure = _run(session, case)
        assert failure is not None, f"case seed {seed}: the broken project deployed"
        # the head is one transaction: nothing of the broken project stayed
        assert session.run("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [[0]], seed
        details = failure.details
        block = format_error(failure).split("\n")
        assert len(block) <= 12, f"case seed {seed}: {len(block)} lines:\n" + "\n".join(block)
        counts["cases"] += 1
        per_kind = kinds.setdefault(f"{case.kind}/{case.deploy_kind}", [0, 0])
        per_kind[0] += 1
        if details.get("file") != case.path:
            counts["no file"] += 1
            wrong.append(f"seed {seed} {case.kind}/{case.deploy_kind}: file {details.get('file')} "
                         f"instead of {case.path}:{case.line}: {failure.message}")
            continue
        if details.get("fileLine") is None:
            counts["file only"] += 1
            wrong.append(f"seed {seed} {case.kind}/{case.deploy_kind}: no line (want {case.line}): {failure.message}")
        elif details["fileLine"] != case.line:
            counts["wrong line"] += 1
            assert not details.get("fileExact"), (
                f"seed {seed}: line {details['fileLine']} presented as certain, the broken line is {case.line}:\n"
                + "\n".join(failure.trailer))
            wrong.append(f"seed {seed} {case.kind}/{case.deploy_kind}: line {details['fileLine']} instead of "
                         f"{case.line} ({details.get('locatedBy')}): {failure.message}")
        else:
            counts["exact" if details.get("fileExact") else "candidate"] += 1
            per_kind[1] += 1
    total = counts["cases"]
    right = counts["exact"] + counts["candidate"]
    for key, value in counts.items():
        FIGURES[f"locator: {key}"] += value
    FIGURES["locator: line right, per mille"] = round(1000 * right / total)
    FIGURES["locator: line certain (FILE:), per mille"] = round(1000 * counts["exact"] / total)
    summary = (f"{'full' if FULL else 'fast'} corpus, seed {SEED}: {total} cases, {counts}; per kind (cases, "
               f"line right): {dict(sorted(kinds.items()))}")
    assert counts["no file"] == 0, summary + "\n" + "\n".join(wrong[:20])
    assert right >= LINE_TARGET * total, summary + "\n" + "\n".join(wrong[:20])
