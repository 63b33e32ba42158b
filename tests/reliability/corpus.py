"""Generated migration projects with one statement broken at a known line (the locator corpus).

A project is a few realistic migration files: tables with quoted and unquoted names, foreign
keys, indexes (some CONCURRENTLY), seed rows, views, comments, PL/pgSQL functions with
dollar-quoted bodies that a later statement calls, DO blocks. Some files write table names
behind a `{{schema}}.` placeholder that deploy.sql substitutes. One site of one file is then
broken (a misspelled relation, column, type or function name, a keyword typo, a division by
zero), and the test knows the file and line the report must name.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

NOUNS = ["orders", "customers", "invoices", "payments", "products", "accounts", "events", "sessions",
         "shipments", "tickets", "flows", "audit_entries", "ledger", "regions", "tags", "devices"]
COLUMN_TYPES = ["integer", "text", "numeric", "boolean", "timestamptz", "bigint", "date"]
_FILLED = ("integer", "bigint", "numeric", "text")
TYPE_TYPOS = {"integer": "integr", "text": "txt", "numeric": "numric", "boolean": "bool_ean",
              "timestamptz": "timestamtz", "bigint": "bignt", "date": "dat_e"}

#: deploy.sql variants: how the project's files reach EXECUTE (plain, or rewritten on the way).
LOOP = """BEGIN;
DO $$ DECLARE f record; BEGIN
  FOR f IN SELECT path, content FROM pg_temp.corpus_files ORDER BY path LOOP
{body}
  END LOOP;
END $$;
COMMIT;
"""
DEPLOYS = {
    "plain": "    EXECUTE f.content;",
    "placeholder": "    EXECUTE replace(f.content, '{{schema}}', 'public');",
    "concurrently": ("    EXECUTE replace(regexp_replace(f.content, '\\mCONCURRENTLY\\M', '', 'g'), "
                     "'{{schema}}', 'public');"),
    "trimmed": "    EXECUTE btrim(replace(f.content, '{{schema}}', 'public'), E' \\n');",
    "tabs": "    EXECUTE replace(replace(f.content, '{{schema}}', 'public'), '    ', E'\\t');",
    "failed-in": ("    BEGIN\n      EXECUTE replace(f.content, '{{schema}}', 'public');\n"
                  "    EXCEPTION WHEN OTHERS THEN\n"
                  "      RAISE EXCEPTION 'Failed in %: %', f.path, SQLERRM USING ERRCODE = SQLSTATE;\n    END;"),
}


@dataclass
class Site:
    """A place that can be broken: `line` (0-based, in the file), the word there, what it becomes."""

    line: int
    word: str
    broken: str
    kind: str


@dataclass
class File:
    path: str
    lines: list[str] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)

    def add(self, text: str, sites: list[tuple[int, str, str, str]] = ()) -> None:
        """Append a statement; `sites` are (line within the statement, word, broken word, kind)."""
        base = len(self.lines)
        self.lines.extend(text.split("\n"))
        self.sites.extend(Site(base + n, w, b, k) for n, w, b, k in sites)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class Case:
    files: dict[str, str]
    deploy: str
    deploy_kind: str
    path: str
    line: int  # 1-based
    kind: str


class _Gen:
    def __init__(self, rng: random.Random, placeholder: bool, concurrently: bool) -> None:
        self.rng = rng
        self.placeholder = placeholder
        self.concurrently = concurrently  # deploy.sql strips CONCURRENTLY (it cannot run in a transaction)
        self.tables: list[tuple[str, str, list[tuple[str, str]]]] = []  # (sql name, bare name, columns)
        self.functions: list[tuple[str, str]] = []  # (name, arg types)
        self.serial = 0

    def name(self, base: str) -> str:
        self.serial += 1
        return f"{base}_{self.serial}"

    def qualify(self, sql_name: str) -> str:
        return ("{{schema}}." + sql_name) if self.placeholder and self.rng.random() < 0.6 else sql_name

    def table(self, f: File) -> None:
        rng = self.rng
        bare = self.name(rng.choice(NOUNS))
        quoted = rng.random() < 0.2
        sql = f'"{bare.capitalize()}"' if quoted else bare
        columns = [(self.name("col"), rng.choice(COLUMN_TYPES)) for _ in range(rng.randint(2, 9))]
        lines = [f"CREATE TABLE {self.qualify(sql)} (", "    id bigint PRIMARY KEY,"]
        sites = [(0, "TABLE", "TABEL", "syntax")]
        for col, typ in columns:
            # seed rows (insert) fill every column of these types, so only those may be NOT NULL
            null = " NOT NULL" if typ in _FILLED and rng.random() < 0.3 else ""
            sites.append((len(lines), typ, TYPE_TYPOS[typ], "type"))
            if null:
                sites.append((len(lines), "NULL", "NUL", "syntax"))
            lines.append(f"    {col} {typ}{null},")
        if self.tables and rng.random() < 0.6:
            other_sql = rng.choice(self.tables)[0]
            ref = self.name("ref")
            sites.append((len(lines), other_sql, _misspell(other_sql), "relation"))
            lines.append(f"    {ref} bigint REFERENCES {other_sql} (id),")
        lines.append("    created_at timestamptz NOT NULL DEFAULT now()")
        lines.append(");")
        if rng.random() < 0.4:
            f.add(f"-- {bare}: one row per {rng.choice(NOUNS)} (see {rng.choice(NOUNS)})")
        f.add("\n".join(lines), sites)
        self.tables.append((sql, bare, columns))

    def index(self, f: File) -> None:
        sql, bare, columns = self.rng.choice(self.tables)
        col = self.rng.choice(columns)[0]
        concurrently = "CONCURRENTLY " if self.concurrently and self.rng.random() < 0.5 else ""
        text = f"CREATE INDEX {concurrently}{self.name(bare + '_idx')} ON {self.qualify(sql)} ({col});"
        sites = [(0, col, col + "x", "column"), (0, sql, _misspell(sql), "relation")]
        f.add(text, sites)

    def insert(self, f: File) -> None:
        rng = self.rng
        sql, _, columns = rng.choice(self.tables)
        chosen = [c for c in columns if c[1] in _FILLED]
        if not chosen:
            return
        base = rng.randint(1, 10**6)
        lines = [f"INSERT INTO {self.qualify(sql)} (id, {', '.join(c for c, _ in chosen)})", "VALUES"]
        sites = [(1 - 1, chosen[0][0], chosen[0][0] + "x", "column")]
        rows = rng.randint(1, 5)
        for r in range(rows):
            values = [str(base + r)] + [("'" + rng.choice(NOUNS) + "'") if t == "text" else str(rng.randint(1, 99))
                                        for _, t in chosen]
            sites.append((len(lines), values[0], f"{values[0]} / 0", "division"))
            lines.append("    (" + ", ".join(values) + ")" + ("," if r < rows - 1 else ";"))
        f.add("\n".join(lines), sites)

    def view(self, f: File) -> None:
        sql, bare, columns = self.rng.choice(self.tables)
        col = self.rng.choice(columns)[0]
        lines = [f"CREATE VIEW {self.name(bare + '_v')} AS", f"    SELECT id, {col}", f"    FROM {self.qualify(sql)}",
                 "    WHERE id > 0;"]
        sites = [(1, col, col + "x", "column"), (2, sql, _misspell(sql), "relation")]
        f.add("\n".join(lines), sites)

    def function(self, f: File) -> None:
        rng = self.rng
        sql, _, columns = rng.choice(self.tables)
        name = self.name("count_rows")
        tag = rng.choice(["$$", "$fn$", "$body$"])
        col = columns[0][0]
        lines = [f"CREATE OR REPLACE FUNCTION {name}(p_min bigint) RETURNS bigint", f"LANGUAGE plpgsql AS {tag}",
                 "DECLARE", "    n bigint;", "BEGIN", "    -- counts the rows above p_min",
                 f"    SELECT count({col}) INTO n", f"      FROM {sql}", "     WHERE id > p_min;",
                 "    RETURN n;", f"END {tag};"]
        sites = [(6, col, col + "x", "column"), (7, sql, _misspell(sql), "relation")]
        f.add("\n".join(lines), sites)
        f.add(f"SELECT {name}(0);")
        self.functions.append((name, "bigint"))
        f.add(f"COMMENT ON FUNCTION {name}(bigint) IS 'rows of {sql.strip(chr(34))}';",
              [(0, name, name + "_old", "function")])

    def do_block(self, f: File) -> None:
        sql, _, _ = self.rng.choice(self.tables)
        tag = self.rng.choice(["$$", "$do$"])
        lines = [f"DO {tag}", "BEGIN", f"    IF NOT EXISTS (SELECT 1 FROM {sql} WHERE id = -1) THEN",
                 "        RAISE NOTICE 'no sentinel row';", "    END IF;", f"END {tag};"]
        f.add("\n".join(lines), [(2, sql, _misspell(sql), "relation")])

    def alter(self, f: File) -> None:
        sql, _, _ = self.rng.choice(self.tables)
        column = self.name("extra")
        sites = [(0, sql, _misspell(sql), "relation")]
        f.add(f"ALTER TABLE {self.qualify(sql)}\n    ADD COLUMN {column} text;", sites)
        f.add(f"COMMENT ON COLUMN {sql}.{column} IS 'added later';")


def _misspell(name: str) -> str:
    """`orders_3` -> `orders_3_x`; a quoted `"Orders_3"` -> `"Orders_3_x"` (still quoted)."""
    return name[:-1] + '_x"' if name.endswith('"') else name + "_x"


def make_case(seed: int) -> Case:
    """One project with one broken site; the same seed gives the same case."""
    rng = random.Random(seed)
    deploy_kind = rng.choice(sorted(DEPLOYS))
    gen = _Gen(rng, placeholder=deploy_kind != "plain", concurrently=deploy_kind == "concurrently")
    files: list[File] = []
    for number in range(1, rng.randint(2, 6) + 1):
        f = File(f"./migrations/{number:03d}_{rng.choice(NOUNS)}.sql")
        f.add(f"-- migration {number}")
        gen.table(f)
        for _ in range(rng.randint(1, 6)):
            rng.choice([gen.table, gen.index, gen.insert, gen.insert, gen.view, gen.function, gen.do_block,
                        gen.alter])(f)
        files.append(f)
    target = rng.choice([f for f in files if f.sites])
    site = rng.choice(target.sites)
    line = target.lines[site.line]
    pattern = re.compile(r"(?<![\w$])" + re.escape(site.word) + r"(?![\w$])")
    target.lines[site.line] = pattern.sub(site.broken, line, count=1)
    assert target.lines[site.line] != line, (site, line)
    deploy = LOOP.format(body=DEPLOYS[deploy_kind])
    return Case({f.path: f.text for f in files}, deploy, deploy_kind, target.path, site.line + 1, site.kind)
