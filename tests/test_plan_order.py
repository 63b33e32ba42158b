"""The offline plan must order exactly like the server's `pgmi_plan_view` (real PostgreSQL).

Keys are chosen to catch every way a client sort can drift from `COLLATE "C"`: non-ASCII
letters (UTF-8 byte order, not locale order), upper vs lower case, '10' vs '9', keys equal to
other files' paths, separators `-` `/` `_` `.` and a space.
"""

from __future__ import annotations

import io
import uuid

import pytest

from pgmilib.project.metadata import fallback_id, plan

TRICKY_KEYS = [
    "10", "9", "09", "Z", "a", "A", "é", "e", "ё", "😀", "ä", "b/1", "b-1", "b_1", "b.1", " 0",
    "./b.sql", "./a.sql", "./Ü.sql", "100/010", "100/01", "1000",
]
PATHS = ["./a.sql", "./b.sql", "./B.sql", "./Ü.sql", "./é/x.sql", "./e/x.sql", "./9.sql", "./10.sql",
         "./README.md", "./data/seed.json"]


def _utf8_db(conn) -> str:
    name = "t_plan_" + uuid.uuid4().hex[:10]
    conn.run(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    return name


@pytest.fixture
def utf8_db(pg, conn):
    name = _utf8_db(conn)
    yield name
    conn.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()",
             d=name)
    conn.run(f'DROP DATABASE IF EXISTS "{name}"')


def _files():
    """Fake scanned files: every path, each with a slice of the tricky keys (some with none)."""
    from types import SimpleNamespace

    from pgmilib.project.metadata import ScriptMeta

    files = []
    for i, path in enumerate(PATHS):
        keys = tuple(TRICKY_KEYS[i::len(PATHS)]) if i % 4 != 3 else ()
        meta = ScriptMeta(uuid.UUID(int=i + 1), bool(i % 2), f"d{i}", keys) if i % 5 != 4 else None
        files.append(SimpleNamespace(path=path, metadata=meta, is_sql=path.endswith(".sql"), is_test=False))
    return files


def test_offline_order_equals_server_collate_c_order_and_generic_id(pg, utf8_db):
    """The view's ordering clause and generic_id expression, evaluated by the server itself."""
    import pg8000.native

    files = _files()
    expected = plan(files)
    db = pg8000.native.Connection(**pg.conn_kwargs(utf8_db))
    try:
        rows = [(e.path, e.sort_key) for e in reversed(expected)]  # feed in a different order
        db.run("CREATE TEMP TABLE r(path text, sort_key text)")
        for path, key in rows:
            db.run("INSERT INTO r VALUES (:p, :k)", p=path, k=key)
        got = db.run(
            'SELECT path, sort_key, md5(path::bytea)::uuid, ROW_NUMBER() OVER (ORDER BY sort_key COLLATE "C", '
            'path COLLATE "C") AS n FROM r ORDER BY n'
        )
    finally:
        db.close()
    assert [(p, k, g, n) for p, k, g, n in got] == [
        (e.path, e.sort_key, e.generic_id, e.execution_order) for e in expected
    ]
    assert all(e.generic_id == fallback_id(e.path) for e in expected)


def test_session_plan_view_matches_offline_plan(pg, utf8_db, tmp_path):
    """End to end: files on disk -> scanner -> session tables -> pgmi_plan_view == plan()."""
    session = pytest.importorskip("pgmilib.deploy.session", reason="pgmilib/session.py not written yet")
    import pg8000.native

    from pgmilib.output import Output
    from pgmilib.project import scan as project_mod

    (tmp_path / "deploy.sql").write_text("SELECT 1;\n")
    for i, f in enumerate(_files()):
        target = tmp_path / f.path[2:]
        target.parent.mkdir(parents=True, exist_ok=True)
        body = "SELECT 1;\n"
        if f.metadata is not None and f.is_sql:
            keys = "".join(f"<key>{k}</key>" for k in f.metadata.sort_keys)
            body = (f'/*\n<pgmi-meta id="{f.metadata.id}" idempotent="{str(f.metadata.idempotent).lower()}">'
                    f"<description>{f.metadata.description}</description><sortKeys>{keys}</sortKeys>"
                    f"</pgmi-meta>\n*/\n{body}")
        target.write_text(body)
    project = project_mod.scan(tmp_path)
    expected = plan(project.files)
    assert len(expected) > len(project.files), "several keys per file must yield several rows"
    db = pg8000.native.Connection(**pg.conn_kwargs(utf8_db))
    try:
        session.prepare(db, project, params={}, out=Output(stdout=io.StringIO(), stderr=io.StringIO()))
        got = db.run(
            "SELECT execution_order, sort_key, path, generic_id, id, idempotent, description "
            "FROM pg_temp.pgmi_plan_view ORDER BY execution_order"
        )
    finally:
        db.close()
    assert [tuple(r) for r in got] == [
        (e.execution_order, e.sort_key, e.path, e.generic_id, e.id, e.idempotent, e.description) for e in expected
    ]


# ---- the example projects, deployed for real -----------------------------------------------

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


def _copy(name, tmp_path):
    import shutil

    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target)
    return target


def test_execution_order_policy_offline_plan_is_the_reviewed_manifest():
    from pgmilib.project.scan import scan_project

    rows = plan(scan_project(str(EXAMPLES / "execution-order-policy" / "project")).files)
    assert [(r.execution_order, r.sort_key, r.path) for r in rows] == [
        (1, "100/010", "./schema/010_catalog.sql"), (2, "150/000", "./checks/smoke.sql"),
        (3, "200/010", "./load/010_products.sql"), (4, "200/020", "./load/020_prices.sql"),
        (5, "300/010", "./post/010_indexes.sql"), (6, "400/000", "./checks/smoke.sql"),
    ]


def test_execution_order_policy_scenarios(run_pgmi, fresh_db, conn, pg, tmp_path):
    import shutil

    import pg8000.native

    root = _copy("execution-order-policy", tmp_path)
    project = root / "project"
    ok = run_pgmi("deploy", str(project), "-d", fresh_db, "--force")
    assert ok.returncode == 0, ok.stderr
    assert "deployment plan:" in ok.stderr and "#6 | 400/000 | ./checks/smoke.sql" in ok.stderr
    assert ok.stderr.index("smoke: ok (0 products, 0 prices)") < ok.stderr.index("smoke: ok (5 products, 5 prices)")
    db = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        assert db.run("SELECT count(*) FROM catalog.product")[0][0] == 5
        assert db.run("SELECT count(*) FROM catalog.price")[0][0] == 5
        assert db.run("SELECT convalidated FROM pg_constraint WHERE conname = 'price_sku_fk'") == [[True]]
        assert db.run("SELECT to_regclass('catalog.price_sku_ix') IS NOT NULL")[0][0] is True
    finally:
        db.close()
    again = run_pgmi("deploy", str(project), "-d", fresh_db, "--force")
    assert again.returncode == 0, again.stderr

    shutil.copy(root / "break-it/012_categories.sql", project / "load")
    dup = run_pgmi("deploy", str(project), "-d", fresh_db, "--force")
    assert dup.returncode == 13, dup.stderr
    assert "duplicate plan positions:" in dup.stderr
    assert "200/010: ./load/010_products.sql, ./load/012_categories.sql" in dup.stderr
    (project / "load/012_categories.sql").unlink()

    shutil.copy(root / "break-it/015_discounts.sql", project / "load")
    drift = run_pgmi("deploy", str(project), "-d", fresh_db, "--force")
    assert drift.returncode == 13, drift.stderr
    assert "plan does not match the reviewed manifest:" in drift.stderr
    assert "#4: manifest has (200/020, ./load/020_prices.sql), plan has (200/015, ./load/015_discounts.sql)" \
        in drift.stderr
    assert "#7: not in manifest — plan has (400/000, ./checks/smoke.sql)" in drift.stderr
    db = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        assert db.run("SELECT to_regclass('catalog.category') IS NULL, to_regclass('catalog.discount') IS NULL") \
            == [[True, True]]
        assert db.run("SELECT count(*) FROM catalog.product")[0][0] == 5
    finally:
        db.close()


def test_seed_demo_scenarios(run_pgmi, fresh_db, pg, tmp_path):
    import json

    import pg8000.native

    root = _copy("seed-demo", tmp_path)
    seeds = root / "seeds/roles.json"

    def counts():
        db = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
        try:
            return tuple(db.run(sql)[0][0] for sql in (
                "SELECT count(*) FROM role WHERE deprecated_at IS NULL",
                "SELECT count(*) FROM permission WHERE deprecated_at IS NULL",
                "SELECT count(*) FROM role_permission",
            ))
        finally:
            db.close()

    def deploy():
        return run_pgmi("deploy", str(root), "-d", fresh_db, "--force")

    first = deploy()
    assert first.returncode == 0, first.stderr
    assert "seed file validated: ./seeds/roles.json" in first.stderr
    assert first.stderr.count("plan: grant + ") == 6
    assert "catalog matches seeds/roles.json exactly" in first.stderr
    assert counts() == (3, 4, 6)

    second = deploy()
    assert second.returncode == 0 and "plan:" not in second.stderr
    assert counts() == (3, 4, 6)

    doc = json.loads(seeds.read_text())
    doc["roles"][0]["grants"].remove("report.run")
    seeds.write_text(json.dumps(doc))
    edge = deploy()
    assert edge.returncode == 0 and "plan: grant - auditor -> report.run" in edge.stderr
    assert counts() == (3, 4, 5)

    db = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    db.run("UPDATE permission SET description = 'x' WHERE key = 'report.run'")
    db.close()
    drift = deploy()
    assert drift.returncode == 0
    assert "plan: permission report.run: live='x' seed='Run financial reports'" in drift.stderr

    doc["roles"] = [r for r in doc["roles"] if r["key"] != "catalog_manager"]
    seeds.write_text(json.dumps(doc))
    gone = deploy()
    assert gone.returncode == 0 and "plan: role - catalog_manager (deprecate)" in gone.stderr
    assert counts()[0] == 2

    doc["roles"].append({"key": "idle", "description": "no grants", "grants": []})
    seeds.write_text(json.dumps(doc))
    bad = deploy()
    assert bad.returncode == 13
    assert "catalog invariant violated: 1 active role(s) with no permissions" in bad.stderr
    assert counts()[0] == 2, "the failed deploy changed nothing"

    doc["roles"][-1]["grants"] = ["no.such"]
    seeds.write_text(json.dumps(doc))
    invalid = deploy()
    assert invalid.returncode == 13 and "seed file grants undeclared permissions: no.such" in invalid.stderr
    doc["roles"][-1] = dict(doc["roles"][0])
    seeds.write_text(json.dumps(doc))
    dupe = deploy()
    assert dupe.returncode == 13 and "duplicate keys in seed file: role auditor" in dupe.stderr
