"""The text side of the lock report (pure): which statements lock what, in which mode; sizes; the table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgmilib.deploy import lockreport
from pgmilib.deploy import lockstatements as ls
from pgmilib.errors import LockRiskFound, UsageError


def kinds(text: str) -> list[tuple[int, str, str, tuple]]:
    return [(s.line, s.kind, s.mode, s.names) for s in ls.statements("f.sql", text)]


@pytest.mark.parametrize("sql, expected", [
    ("ALTER TABLE public.orders ADD COLUMN x int;", [("alter table", ls.ACCESS_EXCLUSIVE, (("public", "orders"),))]),
    ("ALTER TABLE IF EXISTS ONLY \"Big T\" DROP COLUMN y;", [("alter table", ls.ACCESS_EXCLUSIVE, ((None, "Big T"),))]),
    ("ALTER TABLE o VALIDATE CONSTRAINT c;", [("alter table", ls.SHARE_UPDATE_EXCLUSIVE, ((None, "o"),))]),
    ("ALTER TABLE o ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p(id);",
     [("alter table", ls.SHARE_ROW_EXCLUSIVE, ((None, "o"),)), ("references", ls.SHARE_ROW_EXCLUSIVE, ((None, "p"),))]),
    ("ALTER TABLE o VALIDATE CONSTRAINT c, ADD COLUMN z int;", [("alter table", ls.ACCESS_EXCLUSIVE, ((None, "o"),))]),
    ("CREATE INDEX ON orders (a);", [("create index", ls.SHARE, ((None, "orders"),))]),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY s.t USING btree (a);",
     [("create index", ls.SHARE_UPDATE_EXCLUSIVE, (("s", "t"),))]),
    ("LOCK TABLE a, ONLY b IN SHARE ROW EXCLUSIVE MODE NOWAIT;", [("lock", ls.SHARE_ROW_EXCLUSIVE, ((None, "a"), (None, "b")))]),
    ("LOCK orders;", [("lock", ls.ACCESS_EXCLUSIVE, ((None, "orders"),))]),
    ("TRUNCATE TABLE a, b CASCADE;", [("truncate", ls.ACCESS_EXCLUSIVE, ((None, "a"), (None, "b")))]),
    ("DROP INDEX IF EXISTS app.i_one;", [("drop", ls.ACCESS_EXCLUSIVE, (("app", "i_one"),))]),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv;", [("refresh", ls.EXCLUSIVE, ((None, "mv"),))]),
    ("CREATE TRIGGER t BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f();",
     [("create trigger", ls.SHARE_ROW_EXCLUSIVE, ((None, "orders"),))]),
    ("CREATE TABLE audit (id int REFERENCES orders);", [("references", ls.SHARE_ROW_EXCLUSIVE, ((None, "orders"),))]),
    ("SELECT * FROM orders; INSERT INTO orders VALUES (1); UPDATE orders SET a = 1;", []),
])
def test_statements_and_their_modes(sql, expected):
    assert [(k, m, n) for _, k, m, n in kinds(sql)] == expected


def test_comments_are_skipped_but_execute_strings_and_do_bodies_are_searched():
    text = ("-- ALTER TABLE commented ADD x int;\n/* TRUNCATE gone; */\n"
            "DO $$ BEGIN EXECUTE 'ALTER TABLE \"Small\" ALTER COLUMN a SET NOT NULL'; END $$;\n"
            "DO $body$ BEGIN CREATE INDEX i ON inner_t (a); END $body$;\n")
    found = ls.statements("f.sql", text)
    assert [(s.line, s.names) for s in found] == [(3, ((None, "Small"),)), (4, ((None, "inner_t"),))]
    assert found[0].sets_not_null() and found[1].builds_index()


def test_what_an_alter_table_does():
    [add] = ls.statements("f", "ALTER TABLE o ADD COLUMN t uuid DEFAULT gen_random_uuid();")
    [typ] = ls.statements("f", "ALTER TABLE o ALTER COLUMN a SET DATA TYPE bigint;")
    [plain] = ls.statements("f", "ALTER TABLE o ADD COLUMN t text;")
    assert add.adds_column_with_default() and not add.changes_type()
    assert typ.changes_type() and not typ.adds_column_with_default()
    assert not (plain.adds_column_with_default() or plain.changes_type() or plain.sets_not_null())


def test_locate_prefers_the_statement_that_explains_the_lock():
    found = ls.index([
        ("./a.sql", "CREATE TABLE x (o int REFERENCES orders);\n"),
        ("./b.sql", "CREATE INDEX ON orders (a);\nALTER TABLE orders ADD COLUMN t uuid DEFAULT gen_random_uuid();\n"),
        ("deploy.sql", "LOCK TABLE other.orders;\n"),
    ])
    rewrite = ls.locate(found, "public", "orders", ls.ACCESS_EXCLUSIVE, rewritten=True)
    assert (rewrite.path, rewrite.line) == ("./b.sql", 2)
    share = ls.locate(found, "public", "orders", ls.SHARE, rewritten=False)
    assert (share.path, share.line) == ("./b.sql", 1)
    assert ls.locate(found, "other", "orders", ls.ACCESS_EXCLUSIVE, rewritten=False).path == "./b.sql"
    assert ls.locate(found, "public", "unknown", ls.ACCESS_EXCLUSIVE, rewritten=False) is None


def test_the_conflict_table_is_symmetric_and_ordered():
    for a in ls.MODES:
        for b in ls.MODES:
            assert ls.conflicts(a, b) == ls.conflicts(b, a)
    assert ls.conflicts(ls.ACCESS_EXCLUSIVE, ls.ACCESS_SHARE) and not ls.conflicts(ls.SHARE, ls.ACCESS_SHARE)
    assert ls.conflicts(ls.SHARE, ls.ROW_EXCLUSIVE) and not ls.conflicts(ls.SHARE, ls.SHARE)
    assert [ls.rank(m) for m in ls.MODES] == list(range(1, 9))


@given(st.text(alphabet="ALTER TABLE CREATE INDEX ON LOCK ;'\"$-/*\n xyz.,()", max_size=300))
def test_any_text_is_scanned_without_error(text):
    for statement in ls.statements("f.sql", text):
        assert 1 <= statement.line <= text.count("\n") + 1 and statement.names


@pytest.mark.parametrize("text, size", [("0", 0), ("8192", 8192), ("500kB", 512_000), ("10MB", 10 * 2 ** 20),
                                        ("1.5GB", int(1.5 * 2 ** 30)), ("2 tb", 2 * 2 ** 40)])
def test_sizes(text, size):
    assert lockreport.parse_size("--fail-on-lock-risk", text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1MB", "10 MiB", "./project"])
def test_bad_sizes_are_usage_errors(text):
    with pytest.raises(UsageError, match='"--fail-on-lock-risk" flag'):
        lockreport.parse_size("--fail-on-lock-risk", text)


def entry(name: str, *, size: int, mode: str = ls.ACCESS_EXCLUSIVE, rewritten: bool | None = False,
          acquired: bool = True) -> lockreport.LockEntry:
    return lockreport.LockEntry(oid=hash(name) & 0xFFFF, schema="public", name=name, kind="r", mode=mode,
                                rewritten=rewritten, rows=size // 100, bytes=size, acquired=acquired)


def test_the_table_is_largest_first_and_marks_rewrites():
    report = lockreport.LockReport(entries=[entry("small", size=8192), entry("Big", size=50 * 2 ** 20, rewritten=True),
                                            entry("mid", size=2 ** 20, mode=ls.SHARE)], created=2)
    lines = lockreport.render(report)
    assert "2 relation(s) created by the deploy are not listed" in lines[0]
    assert [line.split()[0] for line in lines[2:5]] == ['public."Big"', "public.mid", "public.small"]
    assert "REWRITTEN" in lines[2] and "50.0 MB" in lines[2] and "(not found in the project's SQL text)" in lines[2]
    assert lockreport.render(lockreport.LockReport())[0].startswith("locks: no existing relation")


def test_the_risk_gate_counts_rewrites_and_access_exclusive_above_the_threshold():
    report = lockreport.LockReport(entries=[entry("share", size=2 ** 30, mode=ls.SHARE),
                                            entry("small", size=8192),
                                            entry("big", size=2 ** 30, mode=ls.SHARE_UPDATE_EXCLUSIVE, rewritten=True)])
    with pytest.raises(LockRiskFound, match=r"1 relation\(s\).*public\.big \(rewritten, 1.0 GB\)"):
        lockreport.check_risk(report, 2 ** 20)
    with pytest.raises(LockRiskFound, match="public.small"):
        lockreport.check_risk(report, 0)
    lockreport.check_risk(lockreport.LockReport(entries=[entry("share", size=2 ** 30, mode=ls.SHARE)]), 0)
