"""Deterministic project generator for the benchmark.

Workloads (the same SQL text is handed to every method, in the same order):
  mixed  -- realistic objects: tables (+COMMENTs), indexes (on earlier tables, some partial),
            plpgsql functions, views (over earlier tables); one object per file; sizes log-uniform
            200 B .. 20 KB; about one file in four carries unicode (comments and string literals).
  dense  -- statement-dense: one file creates two tables, every other file holds many small
            statements (INSERT / UPDATE / DELETE, ~60 B each), sizes log-uniform 200 B .. 20 KB.
  ddl    -- the small-DDL corpus (many tiny files): 10 % CREATE TABLE + COMMENT, 90 %
            plpgsql CREATE FUNCTION + COMMENT, ~300-420 B per file, in 50 directories.
  small  -- the shapes of small real projects (SMALL_SHAPES, by file count): one pg_dump-style file
            of 230 statements, 25 migrations of 68 statements, 160 files of 770 statements; enums,
            quoted identifiers, triggers, PL/pgSQL, a few seed rows (schema `app`).

Layout of bench/work/proj/<workload>-<N>/ :
  src/...               the project files (source of truth; nested directories)
  pgmi/                 src (hard links) + deploy.sql = plain EXECUTE loop over pg_temp.pgmi_plan_view
  pgmi-ledger/          src (hard links) + deploy.sql = apply-once loop with a pgmi_applied ledger
  pgmi-load/            src (hard links) + deploy.sql = `SELECT 1;` (pgmi's session load alone)
  floor/concat.sql      all files concatenated in plan order           (psql -1 -f)
  floor/copyloop.sql    COPY the files into a temp table + the same DO/EXECUTE loop, one transaction
  floor/copyledger.sql  the same with the apply-once ledger
  floor/copyonly.sql    COPY of the same rows only (load floor)
  sqitch/ yoyo/ dbmate/ the same changes in each peer's format (only when peers=True)
  meta.json             counts, bytes, verification query and its expected result

Files never end with a comment after the last statement (yoyo's sqlparse split would turn that
into an empty query), and comments sit at the top of a file.
usage: python3 bench/gen.py WORKLOAD N [--peers] [--out DIR]
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil

GEN_VERSION = 5  # 5: the floors' lz4 on their content column only
HERE = os.path.dirname(os.path.abspath(__file__))
PROJ_ROOT = os.path.join(HERE, "work", "proj")
WORKLOADS = ("mixed", "dense", "ddl")

UNI_COMMENTS = [
    "-- Überprüfung der Größe · café ñandú",
    "-- 日本語のコメント: テーブル定義",
    "-- emoji 🚀 deploy ✓",
    "-- Ελληνικά και кириллица",
]
UNI_WORDS = ["café", "Größe", "日本", "naïve", "Ωmega", "ёлка", "🚀"]
TYPES = ["int", "bigint", "text", "numeric(12,2)", "timestamptz", "boolean", "jsonb", "date", "uuid"]

DEPLOY_PLAIN = """\
BEGIN;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT path, content FROM pg_temp.pgmi_plan_view ORDER BY execution_order LOOP
    EXECUTE r.content;
  END LOOP;
END $$;
COMMIT;
"""

# Apply-once: a ledger of applied (path, checksum); files already applied with the same checksum are skipped.
DEPLOY_LEDGER = """\
BEGIN;
CREATE TABLE IF NOT EXISTS public.pgmi_applied (
  path text PRIMARY KEY,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT p.path, p.content, p.checksum
             FROM pg_temp.pgmi_plan_view p
            WHERE NOT EXISTS (SELECT 1 FROM public.pgmi_applied a
                               WHERE a.path = p.path AND a.checksum = p.checksum)
            ORDER BY p.execution_order LOOP
    EXECUTE r.content;
    INSERT INTO public.pgmi_applied (path, checksum) VALUES (r.path, r.checksum)
      ON CONFLICT (path) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now();
  END LOOP;
END $$;
COMMIT;
"""

DEPLOY_LOAD_ONLY = "SELECT 1;\n"

# The floors use the same temp-table model through one psql process. lz4 TOAST compression is what
# the feasibility study measured as the best case for loading; the floor is meant to be the limit.
# lz4 is the content column's own (as pgmi's `_pgmi_source.content`), never the session's default:
# `SET default_toast_compression = lz4` (GEN_VERSION 4 and before) also compressed what the loop
# creates (function bodies, view rules, comments in the catalogs) with lz4 instead of the server's
# pglz, which made the floor's loop ~10 % faster than the same loop in any other session (pgmi's,
# psql -1's) on the mixed workload: work the floor skipped, not a limit (bench/ANALYSIS.md).
FLOOR_HEAD = (
    "SET client_min_messages = warning;\n"
    "BEGIN;\n"
    "CREATE TEMP TABLE pgmi_files (path text PRIMARY KEY, content text COMPRESSION lz4 NOT NULL,"
    " checksum text NOT NULL) ON COMMIT DROP;\n"
    "COPY pgmi_files FROM STDIN;\n"
)
FLOOR_LOOP = """\
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT path, content FROM pg_temp.pgmi_files ORDER BY path COLLATE "C" LOOP
    EXECUTE r.content;
  END LOOP;
END $$;
COMMIT;
"""
FLOOR_LEDGER = """\
CREATE TABLE IF NOT EXISTS public.pgmi_applied (
  path text PRIMARY KEY,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT f.path, f.content, f.checksum FROM pg_temp.pgmi_files f
            WHERE NOT EXISTS (SELECT 1 FROM public.pgmi_applied a WHERE a.path = f.path AND a.checksum = f.checksum)
            ORDER BY f.path COLLATE "C" LOOP
    EXECUTE r.content;
    INSERT INTO public.pgmi_applied (path, checksum) VALUES (r.path, r.checksum)
      ON CONFLICT (path) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now();
  END LOOP;
END $$;
COMMIT;
"""

VERIFY_OBJECTS = r"""select
 (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relkind = 'r' and c.relname ~ '^t_?\d+$') || '/' ||
 (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relkind = 'i' and c.relname ~ '^ix\d+$') || '/' ||
 (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'public' and p.proname ~ '^f_?\d+$') || '/' ||
 (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relkind = 'v' and c.relname ~ '^v\d+$')"""
VERIFY_DENSE = "select count(*) || '/' || coalesce(sum(n), 0) || '/' || (select count(*) from kv_log) from kv"


def _size(rnd: random.Random, lo: int = 200, hi: int = 20000) -> int:
    return int(math.exp(rnd.uniform(math.log(lo), math.log(hi))))


def _pad_top(sql: str, target: int, rnd: random.Random, unicode: bool) -> str:
    """Leading comment lines until the file reaches its target size (comments only at the top)."""
    head = []
    if unicode:
        head.append(rnd.choice(UNI_COMMENTS) + "\n")
    line = "-- " + "generated object; documentation line for size realism ".ljust(70, ".") + "\n"
    cur = len(sql.encode()) + sum(len(h.encode()) for h in head)
    while cur + len(line) <= target or cur < 200:
        head.append(line)
        cur += len(line)
    return "".join(head) + sql


# ---------------------------------------------------------------- mixed
def gen_mixed(n: int, seed: int = 42):
    rnd = random.Random(seed)
    tables: list[tuple[str, list[str]]] = []
    counts = {"table": 0, "index": 0, "function": 0, "view": 0}
    files = []
    for i in range(1, n + 1):
        tgt = _size(rnd)
        uni = rnd.random() < 0.25
        r = rnd.random()
        if i == 1 or r < 0.35:
            kind = "table"
            name = f"t{i:05d}"
            ncols = max(3, min(24, tgt // 400))
            cols = [f"c{c}_{rnd.choice(['name', 'val', 'ts', 'flag', 'amount', 'ref'])}" for c in range(ncols)]
            types = [rnd.choice(TYPES) for _ in cols]
            body = ",\n  ".join(["id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"]
                                + [f"{c} {t}" + (" NOT NULL DEFAULT 0" if t == "int" and rnd.random() < .3 else "")
                                   for c, t in zip(cols, types)])
            word = rnd.choice(UNI_WORDS) if uni else "table"
            sql = f"CREATE TABLE {name} (\n  {body}\n);\nCOMMENT ON TABLE {name} IS 'generated {word} {i}, it''s fine';\n"
            for c in cols:
                if len(sql.encode()) + 90 > tgt:
                    break
                sql += f"COMMENT ON COLUMN {name}.{c} IS 'column {c} of {name}: {rnd.choice(UNI_WORDS) if uni else 'value'}';\n"
            tables.append((name, ["id"] + cols))
        elif r < 0.55:
            kind = "index"
            tname, cols = rnd.choice(tables)
            ccols = rnd.sample(cols[1:], k=min(len(cols) - 1, rnd.randint(1, 3)))
            where = f"\n  WHERE {ccols[0]} IS NOT NULL" if tgt > 800 else ""
            sql = f"CREATE INDEX ix{i:05d} ON {tname} ({', '.join(ccols)}){where};\n"
        elif r < 0.85:
            kind = "function"
            lines = []
            k = 0
            while sum(len(x) + 1 for x in lines) + 320 < tgt:
                k += 1
                lines.append(f"  IF x > {rnd.randint(0, 10**6)} THEN")
                lines.append(f"    acc := acc + {rnd.randint(1, 999)} * x - {k};  -- step {k}")
                lines.append("  ELSE")
                lines.append(f"    acc := acc + length(E'tab\\there {rnd.choice(UNI_WORDS) if uni else 'x'}') + {k};")
                lines.append("  END IF;")
            body = "\n".join(lines)
            sql = (f"CREATE FUNCTION f{i:05d}(x bigint) RETURNS bigint\nLANGUAGE plpgsql AS $fn$\n"
                   f"DECLARE\n  acc bigint := 0;\nBEGIN\n{body}\n  RETURN acc + x;\nEND;\n$fn$;\n"
                   f"COMMENT ON FUNCTION f{i:05d}(bigint) IS 'function {i} {rnd.choice(UNI_WORDS) if uni else ''}';\n")
        else:
            kind = "view"
            tname, cols = rnd.choice(tables)
            sel = [f"  {c}" for c in cols]
            extra = []
            k = 0
            while sum(len(s) + 2 for s in sel + extra) + 160 < tgt and k < 400:
                k += 1
                lit = f"{rnd.choice(UNI_WORDS)}_{k}" if uni else f"big_{k}"
                extra.append(f"  CASE WHEN id > {rnd.randint(0, 1000)} THEN '{lit}' ELSE 'small_{k}' END AS k{k}")
            sql = f"CREATE VIEW v{i:05d} AS\nSELECT\n" + ",\n".join(sel + extra) + f"\nFROM {tname}\nWHERE id > 0;\n"
        counts[kind] += 1
        sql = _pad_top(sql, tgt, rnd, uni)
        files.append((f"b{(i - 1) // 100:03d}/{i:05d}_{kind}.sql", f"m{i:05d}", sql))
    expect = f"{counts['table']}/{counts['index']}/{counts['function']}/{counts['view']}"
    return files, {"counts": counts, "verify_sql": VERIFY_OBJECTS, "expect": expect}


# ---------------------------------------------------------------- dense
def gen_dense(n: int, seed: int = 43):
    rnd = random.Random(seed)
    files = []
    first = ("-- statement-dense workload: key/value rows written by many small statements\n"
             "CREATE TABLE kv (id bigint PRIMARY KEY, k text NOT NULL, v text, n int NOT NULL DEFAULT 0);\n"
             "CREATE TABLE kv_log (id bigserial PRIMARY KEY, kv_id bigint NOT NULL, note text);\n")
    files.append(("d000/00000_schema.sql", "m00000", first))
    live: dict[int, int] = {}
    next_id = 1
    stmts = 0
    log_rows = 0
    for i in range(1, n):
        tgt = _size(rnd)
        uni = rnd.random() < 0.25
        parts = []
        cur = 0
        while cur < tgt:
            r = rnd.random()
            if r < 0.6 or len(live) < 10:
                kid = next_id
                next_id += 1
                nval = rnd.randint(0, 99)
                word = rnd.choice(UNI_WORDS) if uni else "v"
                s = f"INSERT INTO kv (id, k, v, n) VALUES ({kid}, 'key_{kid}', '{word} {kid}', {nval});\n"
                live[kid] = nval
            elif r < 0.85:
                kid = rnd.choice(list(live)) if len(live) < 64 else next_id - 1 - rnd.randrange(min(len(live), 50))
                if kid not in live:
                    kid = next(iter(live))
                s = f"UPDATE kv SET n = n + 1 WHERE id = {kid};\n"
                live[kid] += 1
            elif r < 0.95:
                kid = next_id - 1
                s = f"INSERT INTO kv_log (kv_id, note) VALUES ({kid}, 'touch');\n"
                log_rows += 1
            else:
                kid = next_id - 1
                if kid in live and len(live) > 20:
                    s = f"DELETE FROM kv WHERE id = {kid};\n"
                    del live[kid]
                else:
                    s = "SELECT 1;\n"
            parts.append(s)
            cur += len(s.encode())
            stmts += 1
        sql = "".join(parts)
        if uni:
            sql = rnd.choice(UNI_COMMENTS) + "\n" + sql
        files.append((f"d{i // 100:03d}/{i:05d}_rows.sql", f"m{i:05d}", sql))
    expect = f"{len(live)}/{sum(live.values())}/{log_rows}"
    return files, {"counts": {"statements": stmts + 2, "rows": len(live)}, "verify_sql": VERIFY_DENSE, "expect": expect}


# ---------------------------------------------------------------- ddl (many tiny files)
def gen_ddl(n: int, seed: int = 0):
    files = []
    tables = funcs = 0
    for i in range(n):
        if i % 10 == 0:
            body = (f"-- table {i} (ünïcødé)\nCREATE TABLE t_{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    f"name text NOT NULL, created_at timestamptz DEFAULT now());\n"
                    f"COMMENT ON TABLE t_{i} IS 'table {i}';\n")
            tables += 1
        else:
            body = (f"-- function {i}\nCREATE OR REPLACE FUNCTION f_{i}(x integer) RETURNS integer\n"
                    f"LANGUAGE plpgsql IMMUTABLE AS $$\nBEGIN\n  RETURN x + {i};\nEND;\n$$;\n"
                    f"COMMENT ON FUNCTION f_{i}(integer) IS 'function {i}';\n")
            funcs += 1
        files.append((f"mod_{i % 50:02d}/{i:05d}.sql", f"m{i:05d}", body))
    return files, {"counts": {"table": tables, "function": funcs}, "verify_sql": VERIFY_OBJECTS,
                   "expect": f"{tables}/0/{funcs}/0"}


# ---------------------------------------------------------------- small: real projects' shapes
# Stand-ins for public migration sets measured against `psql -1`: files -> statements. One pg_dump-style
# file (~50 KB); a short migration history; an application schema with enums, quoted identifiers,
# triggers and PL/pgSQL. `generate("small", N)` picks the shape by its file count.
SMALL_SHAPES = {1: 230, 25: 68, 160: 770}
VERIFY_SMALL = r"""select
 (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'app' and c.relkind = 'r') || '/' ||
 (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'app') || '/' ||
 (select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace
   where n.nspname = 'app' and t.typtype = 'e')"""
DUMP_HEAD = [
    "SET statement_timeout = 0;\n", "SET lock_timeout = 0;\n", "SET client_encoding = 'UTF8';\n",
    "SET standard_conforming_strings = on;\n", "SET check_function_bodies = false;\n",
    "SET xmloption = content;\n", "SET client_min_messages = warning;\n", "SET row_security = off;\n",
]


def _small_statements(count: int, dump: bool, rnd: random.Random) -> tuple[list[str], dict]:
    """`count` statements of an application schema in dependency order (about ten per entity)."""
    out = list(DUMP_HEAD) if dump else []
    out.append("CREATE SCHEMA app;\n")
    k = 0
    while len(out) < count:
        enum = f'app."status_{k // 4}"'
        table = f'app."Entity {k}"'
        kinds = []
        if k % 4 == 0:
            kinds.append(f"CREATE TYPE {enum} AS ENUM ('new', 'active', 'on hold', 'done', 'café');\n")
        cols = ["    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", '    "userId" bigint',
                "    name text NOT NULL", f"    status {enum} DEFAULT 'new' NOT NULL",
                "    amount numeric(12,2) DEFAULT 0 NOT NULL", "    created_at timestamp with time zone DEFAULT now()",
                "    note text"]
        cols += [f"    extra_{c} {rnd.choice(['text', 'integer', 'boolean', 'jsonb', 'date'])}"
                 for c in range(rnd.randint(2, 14) if dump else rnd.randint(0, 4))]
        kinds.append(f"CREATE TABLE {table} (\n" + ",\n".join(cols) + "\n);\n")
        kinds.append(f"COMMENT ON TABLE {table} IS 'entity {k}: it''s what the application keeps';\n")
        kinds.append(f'CREATE INDEX "ix_entity_{k}_userId" ON {table} USING btree ("userId");\n')
        if k:
            kinds.append(f'ALTER TABLE ONLY {table}\n    ADD CONSTRAINT "fk_entity_{k}_user" FOREIGN KEY ("userId") '
                         f'REFERENCES app."Entity {rnd.randrange(k)}"(id) ON DELETE SET NULL;\n')
        kinds.append(f'CREATE FUNCTION app."touch_{k}"() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n'
                     f"  IF NEW.amount < 0 THEN\n    RAISE EXCEPTION 'negative amount % in entity {k}', NEW.amount;\n"
                     f"  END IF;\n  NEW.note := coalesce(NEW.note, '') || ' touched';\n  RETURN NEW;\nEND\n$$;\n")
        kinds.append(f'CREATE TRIGGER "trg_touch_{k}" BEFORE INSERT OR UPDATE ON {table} '
                     f'FOR EACH ROW EXECUTE FUNCTION app."touch_{k}"();\n')
        kinds.append(f'CREATE FUNCTION app.total_{k}(p_status {enum}) RETURNS numeric\n    LANGUAGE plpgsql STABLE\n'
                     f"    AS $fn$\nDECLARE\n  s numeric;\nBEGIN\n  SELECT sum(amount) INTO s FROM {table} "
                     f"WHERE status = p_status;\n  RETURN coalesce(s, 0);\nEND\n$fn$;\n")
        kinds.append(f'CREATE VIEW app."Entity {k} summary" AS\n SELECT status,\n    count(*) AS n,\n'
                     f"    sum(amount) AS total\n   FROM {table}\n  GROUP BY status;\n")
        values = ", ".join(f"('item {k}.{r} {rnd.choice(UNI_WORDS)}', '{rnd.choice(['new', 'active', 'done'])}', "
                           f"{rnd.randint(0, 9999) / 100})" for r in range(rnd.randint(6, 14) if dump else rnd.randint(2, 6)))
        kinds.append(f"INSERT INTO {table} (name, status, amount) VALUES {values};\n")
        for stmt in kinds:
            if len(out) < count:
                out.append(stmt)
        k += 1
    kept = "".join(out)
    tables = kept.count("CREATE TABLE ")
    functions = kept.count("CREATE FUNCTION ")
    enums = kept.count("CREATE TYPE ")
    return out, {"counts": {"statements": len(out), "table": tables, "function": functions, "enum": enums},
                 "verify_sql": VERIFY_SMALL, "expect": f"{tables}/{functions}/{enums}"}


def gen_small(n: int, seed: int = 45):
    if n not in SMALL_SHAPES:
        raise ValueError(f"small: no shape with {n} files (shapes: {sorted(SMALL_SHAPES)})")
    rnd = random.Random(seed + n)
    statements, info = _small_statements(SMALL_SHAPES[n], dump=n == 1, rnd=rnd)
    files = []
    per = len(statements) / n
    for i in range(n):
        chunk = statements[round(i * per):round((i + 1) * per)]
        head = "--\n-- PostgreSQL database dump\n--\n\n" if n == 1 else f"-- migration {i + 1:04d}\n"
        files.append((f"migrations/{i + 1:04d}_change.sql" if n > 1 else "schema.sql", f"m{i + 1:05d}",
                      head + "\n".join(chunk)))
    return files, info


GENERATORS = {"mixed": gen_mixed, "dense": gen_dense, "ddl": gen_ddl}
GENERATORS["small"] = gen_small


# ---------------------------------------------------------------- tail: a statement-dense deploy.sql
VERIFY_TAIL = "SELECT count(*) || '/' || coalesce(sum(n), 0) FROM tail_kv"


def generate_tail(statements: int = 20000, seed: int = 44) -> dict:
    """A project whose deploy.sql itself holds `statements` small statements (no other files).

    pgmi splits deploy.sql into units and sends them one by one, as psql -f does: this is the
    workload of the "statement-dense tail" target (memory flat, time near `psql -f`).
    Layout: tail-<N>/pgmi/deploy.sql and tail-<N>/floor/tail.sql (the same text).
    """
    out = os.path.join(PROJ_ROOT, f"tail-{statements}")
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("gen_version") == GEN_VERSION:
            meta["dir"] = out
            return meta
    rnd = random.Random(seed)
    parts = ["-- statement-dense tail: many small statements in deploy.sql itself\n",
             "CREATE TABLE tail_kv (id int PRIMARY KEY, k text NOT NULL, n int NOT NULL DEFAULT 0);\n"]
    live: dict[int, int] = {}
    for i in range(1, statements):
        r = rnd.random()
        if r < 0.6 or len(live) < 10:
            word = rnd.choice(UNI_WORDS) if rnd.random() < 0.2 else "k"
            parts.append(f"INSERT INTO tail_kv (id, k) VALUES ({i}, '{word} {i}');\n")
            live[i] = 0
        elif r < 0.9:
            kid = rnd.choice(list(live)[-50:])
            parts.append(f"UPDATE tail_kv SET n = n + 1 WHERE id = {kid}; -- touch {kid}\n")
            live[kid] += 1
        else:
            parts.append(f"DO $$ BEGIN PERFORM {i}; END $$;\n")
    text = "".join(parts)
    shutil.rmtree(out, ignore_errors=True)
    _write(os.path.join(out, "pgmi", "deploy.sql"), text)
    _write(os.path.join(out, "floor", "tail.sql"), text)
    meta = {"gen_version": GEN_VERSION, "workload": "tail", "n": 0, "statements": statements,
            "bytes": len(text.encode()), "verify_sql": VERIFY_TAIL, "expect": f"{len(live)}/{sum(live.values())}",
            "counts": {"statements": statements}}
    _write(meta_path, json.dumps(meta, indent=1) + "\n")
    meta["dir"] = out
    return meta


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _link_tree(src: str, dst: str) -> None:
    """Mirror src into dst with hard links (the pgmi scanner refuses symlinks); copy if linking fails."""
    for d, dirs, names in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(d, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for nm in names:
            a, b = os.path.join(d, nm), os.path.join(dst, rel, nm)
            try:
                os.link(a, b)
            except OSError:
                shutil.copy2(a, b)


def project_dir(workload: str, n: int) -> str:
    return os.path.join(PROJ_ROOT, f"{workload}-{n}")


def generate(workload: str, n: int, peers: bool = False, out: str | None = None) -> dict:
    """Create (or reuse, when up to date) the project; return its meta dict (with 'dir')."""
    out = out or project_dir(workload, n)
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        if meta.get("gen_version") == GEN_VERSION and (meta.get("peers") or not peers):
            meta["dir"] = out
            return meta
    shutil.rmtree(out, ignore_errors=True)
    files, info = GENERATORS[workload](n)
    # plan order = C (byte) order of the './'-prefixed path, exactly like pgmi's execution_order
    files.sort(key=lambda f: ("./" + f[0]).encode())
    src = os.path.join(out, "src")
    for rel, _, sql in files:
        _write(os.path.join(src, rel), sql)
    for variant, deploy in (("pgmi", DEPLOY_PLAIN), ("pgmi-ledger", DEPLOY_LEDGER), ("pgmi-load", DEPLOY_LOAD_ONLY)):
        _link_tree(src, os.path.join(out, variant))
        _write(os.path.join(out, variant, "deploy.sql"), deploy)
    # floors
    fl = os.path.join(out, "floor")
    _write(os.path.join(fl, "concat.sql"), "".join(sql if sql.endswith("\n") else sql + "\n" for _, _, sql in files))
    rows = "".join(f"{_esc('./' + rel)}\t{_esc(sql)}\t{hashlib.sha256(sql.encode()).hexdigest()}\n"
                   for rel, _, sql in files) + "\\.\n"
    _write(os.path.join(fl, "copyloop.sql"), FLOOR_HEAD + rows + FLOOR_LOOP)
    _write(os.path.join(fl, "copyledger.sql"), FLOOR_HEAD + rows + FLOOR_LEDGER)
    _write(os.path.join(fl, "copyonly.sql"), FLOOR_HEAD + rows + "COMMIT;\n")
    if peers:
        write_peers(out, files)
    sizes = [len(sql.encode()) for _, _, sql in files]
    meta = {"gen_version": GEN_VERSION, "workload": workload, "n": len(files), "peers": peers,
            "bytes": sum(sizes), "size_min": min(sizes), "size_median": sorted(sizes)[len(sizes) // 2],
            "size_max": max(sizes), "non_ascii_files": sum(1 for _, _, s in files if not s.isascii()), **info}
    _write(meta_path, json.dumps(meta, indent=1) + "\n")
    meta["dir"] = out
    return meta


def write_peers(out: str, files) -> None:
    """The same changes, in order, in each peer's format."""
    plan = ["%syntax-version=1.0.0", "%project=bench", "%uri=https://example.invalid/bench", ""]
    for k, (_, name, sql) in enumerate(files):
        plan.append(f"{name} 2024-01-01T00:{k // 60 % 60:02d}:{k % 60:02d}Z Bench User <bench@example.invalid> # {name}")
        _write(os.path.join(out, "sqitch", "deploy", f"{name}.sql"), f"-- Deploy bench:{name} to pg\nBEGIN;\n{sql}COMMIT;\n")
        _write(os.path.join(out, "sqitch", "revert", f"{name}.sql"), f"-- Revert bench:{name} from pg\nSELECT 1;\n")
        _write(os.path.join(out, "sqitch", "verify", f"{name}.sql"), f"-- Verify bench:{name} on pg\nSELECT 1;\n")
        _write(os.path.join(out, "yoyo", f"{name}.sql"), sql)
        _write(os.path.join(out, "dbmate", "migrations", f"{20240101000000 + k + 1}_{name}.sql"),
               f"-- migrate:up\n{sql}\n-- migrate:down\n")
    _write(os.path.join(out, "sqitch", "sqitch.plan"), "\n".join(plan) + "\n")
    _write(os.path.join(out, "sqitch", "sqitch.conf"), "[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workload", choices=(*WORKLOADS, "small"))
    ap.add_argument("n", type=int)
    ap.add_argument("--peers", action="store_true", help="also write the sqitch/yoyo/dbmate layouts")
    ap.add_argument("--out", help="output directory (default bench/work/proj/<workload>-<n>)")
    a = ap.parse_args()
    m = generate(a.workload, a.n, a.peers, a.out)
    print(json.dumps({k: v for k, v in m.items() if k != "verify_sql"}))
