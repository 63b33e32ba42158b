"""`pgmi ai contract`: the session API as JSON, generated from the SQL pgmi installs.

Nothing here lists a view column, a function argument or an exit code by hand: views and
their columns are read from sql/session_contract_v1.sql, functions and the event type from
sql/session_*.sql, the events from what pgmi_test_generate actually emits, the step types
from pgmi_test_plan, and exit codes from `pgmilib.errors.Exit`. Only prose (notes,
descriptions, and the exit-code names programs match on) is written here, keyed by the
generated names; tests fail when a key names nothing or a generated name has no prose.
The JSON's field names and nesting are the original tool's, since programs parse it.
"""

from __future__ import annotations

import re
from typing import Any

from pgmilib.errors import Exit
from pgmilib.resources import read_sql

SCHEMA_FILES = ("session_schema.sql", "session_tests.sql", "session_contract_v1.sql", "session_contract_v1_tests.sql")
#: Functions pgmi creates in pg_temp that are not public: only generated test SQL calls them.
INTERNAL_FUNCTIONS = frozenset({"pgmi_run_test_source"})

VIEW_NOTES = {
    "pgmi_parameter_view": "keys are stored lower-cased; pgmi fills only key and value, the other columns keep "
                           "their defaults",
    "pgmi_plan_view": "one row per file and sort key, every loaded file (SQL or not): join pgmi_source_view and "
                      "filter is_sql_file before executing content",
    "pgmi_source_view": "non-test project files only; test files are in pgmi_test_source_view",
}

#: The exit-code names `pgmi ai contract` prints: the original tool's constant names, which
#: programs reading the contract match on (they are not derived from our member names).
EXIT_NAMES = {
    "SUCCESS": "ExitSuccess",
    "GENERAL": "ExitGeneralError",
    "USAGE": "ExitUsageError",
    "PANIC": "ExitPanic",
    "CONFIG": "ExitConfigError",
    "CONNECTION": "ExitConnectionError",
    "APPROVAL_DENIED": "ExitApprovalDenied",
    "EXECUTION": "ExitExecutionFailed",
    "DEPLOY_SQL_MISSING": "ExitDeploySQLMissing",
    "CONCURRENT": "ExitConcurrentDeploy",
    "TIMEOUT": "ExitTimeout",
    "LOCK_RISK": "ExitLockRisk",  # pgmi only: --fail-on-lock-risk (the original has no such code)
    "INTERRUPTED": "ExitInterrupted",
}

EXIT_DESCRIPTIONS = {
    "SUCCESS": "deployment (or command) succeeded",
    "GENERAL": "general error, e.g. deploy.sql could not be read or preprocessed, an unknown failure",
    "USAGE": "invalid command line: unknown flag, missing argument, unknown skill",
    "PANIC": "internal error in pgmi itself (a bug): the message carries a traceback",
    "CONFIG": "invalid configuration: pgmi.yaml, parameters, flags, metadata or the connection settings",
    "CONNECTION": "could not connect or authenticate to PostgreSQL",
    "APPROVAL_DENIED": "the --overwrite confirmation was refused",
    "EXECUTION": "deploy.sql (or a file it executed, or a test) failed on the server",
    "DEPLOY_SQL_MISSING": "the project has no deploy.sql",
    "CONCURRENT": "another deployment holds the database's advisory lock",
    "TIMEOUT": "the --timeout deadline passed; the running statement was cancelled",
    "LOCK_RISK": "--rehearse --fail-on-lock-risk: the rehearsal rewrote or ACCESS EXCLUSIVE-locked a relation "
                 "above the size threshold (nothing was changed)",
    "INTERRUPTED": "interrupted by SIGINT/SIGTERM or a client cancellation; the running statement was cancelled",
}

_MACRO_TRANSACTION = ("; expanded client-side into SAVEPOINT / ROLLBACK TO SAVEPOINT statements, so it must sit "
                      "inside an explicit transaction (BEGIN ... COMMIT in deploy.sql), otherwise PostgreSQL "
                      "raises 25P01")
MACROS = [
    {"form": "CALL pgmi_test()",
     "description": "run every test in the project, each in its own savepoint" + _MACRO_TRANSACTION},
    {"form": "CALL pgmi_test('pattern')",
     "description": "run the tests whose path matches the POSIX regex (fixtures of their directories always run)"
                    + _MACRO_TRANSACTION},
    {"form": "CALL pgmi_test('pattern', 'callback')",
     "description": "as above, reporting each event to callback(pg_temp.pgmi_test_event)" + _MACRO_TRANSACTION},
]

EXECUTION_CONTRACT = {
    "summary": "deploy.sql runs as an atomic head followed by a psql-style tail",
    "head": "everything up to and including the first top-level transaction terminator, sent as one simple "
            "query: all or nothing",
    "tail": "each top-level statement after the head, sent on its own (autocommit per statement, like psql); "
            "BEGIN ... COMMIT in the tail is a real transaction because every unit shares one session",
    "terminators": ["COMMIT", "COMMIT WORK", "COMMIT TRANSACTION", "COMMIT AND CHAIN", "END", "END WORK",
                    "END TRANSACTION", "ROLLBACK", "ROLLBACK WORK", "ROLLBACK TRANSACTION", "ROLLBACK AND CHAIN",
                    "ABORT", "ABORT WORK", "ABORT TRANSACTION"],
    "not_terminators": ["ROLLBACK TO SAVEPOINT", "COMMIT PREPARED", "ROLLBACK PREPARED",
                        "END of a BEGIN ATOMIC function body"],
    "consequences": ["a script without a top-level terminator is one atomic unit",
                     "a failure in the head leaves nothing applied (executionMode atomic)",
                     "a failure in the tail stops there; earlier tail units stay applied (executionMode psql)"],
    "not_via_execute": ["CREATE INDEX CONCURRENTLY", "VACUUM", "CREATE DATABASE"],
    "not_via_execute_why": "they cannot run inside a function or transaction block (SQLSTATE 25001): write them "
                           "at the top level of deploy.sql's tail, not in a file EXECUTEd from a loop",
}

STEP_TYPES_NOTE = ("step_type values of pgmi_test_plan(); they are not event names: a 'fixture' step produces "
                   "fixture_start/fixture_end events, a 'test' step test_start/test_end/rollback, a 'teardown' step "
                   "teardown_start/teardown_end")
EVENT_NOTE = "a callback is a function taking one pg_temp.pgmi_test_event and returning void"


def _strip_comments(sql: str) -> str:
    """Drop `-- ...` line comments (the session SQL has no block comments or `--` inside strings we parse)."""
    return re.sub(r"--[^\n]*", "", sql)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, False, []
    for ch in text:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _balanced(text: str, open_at: int) -> str:
    """The text inside the parentheses starting at `open_at` (which holds '(')."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1:i]
    raise ValueError("unbalanced parentheses in session SQL")


def _column_name(item: str) -> str:
    alias = re.search(r"\bAS\s+(\w+)\s*$", item, re.IGNORECASE)
    if alias:
        return alias.group(1)
    return re.split(r"[.\s]", item.strip())[-1]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def views(sql: str) -> list[dict[str, Any]]:
    found = []
    for match in re.finditer(r"CREATE (?:OR REPLACE )?TEMP VIEW (\w+) AS\s+SELECT(.*?)\bFROM\b", _strip_comments(sql),
                             re.DOTALL | re.IGNORECASE):
        name, select_list = match.group(1), match.group(2)
        view: dict[str, Any] = {"name": name, "columns": [_column_name(i) for i in _split_top_level(select_list)]}
        if name in VIEW_NOTES:
            view["note"] = VIEW_NOTES[name]
        found.append(view)
    return sorted(found, key=lambda v: v["name"])


def functions(sql: str) -> list[dict[str, Any]]:
    """Every `CREATE ... FUNCTION pg_temp.x(...) RETURNS ...` in the text, internal ones included."""
    text = _strip_comments(sql)
    found = []
    for match in re.finditer(r"CREATE (?:OR REPLACE )?FUNCTION pg_temp\.(\w+)\s*\(", text, re.IGNORECASE):
        args_text = _balanced(text, match.end() - 1)
        after = text[match.end() + len(args_text) + 1:]
        returns_match = re.match(r"\s*RETURNS\s+(TABLE\s*\(|[\w.]+)", after, re.IGNORECASE)
        if returns_match is None:
            raise ValueError(f"pg_temp.{match.group(1)}: no RETURNS clause found")
        if returns_match.group(1).upper().startswith("TABLE"):
            table = _balanced(after, returns_match.end() - 1)
            returns = [_normalise(c).split(" ")[0] for c in _split_top_level(table)]
        else:
            returns = [returns_match.group(1).removeprefix("pg_temp.")]
        args = [_normalise(a) for a in _split_top_level(args_text)]
        found.append({"name": match.group(1), "args": args, "returns": returns})
    return found


def event_type(sql: str) -> dict[str, Any]:
    text = _strip_comments(sql)
    match = re.search(r"CREATE TYPE pg_temp\.(\w+) AS\s*\(", text, re.IGNORECASE)
    if match is None:
        raise ValueError("sql/session_tests.sql declares no pg_temp type")
    fields = []
    for field in _split_top_level(_balanced(text, match.end() - 1)):
        name, kind = _normalise(field).split(" ", 1)
        fields.append({"name": name, "type": kind})
    return {"name": match.group(1), "fields": fields}


def emitted_events(generator_sql: str) -> list[str]:
    """The event names pgmi_test_generate writes into the expanded SQL, in first-emitted order."""
    return list(dict.fromkeys(re.findall(r"format\(v_ev,\s*'(\w+)'", generator_sql)))


def step_types(tests_sql: str) -> list[str]:
    """The step_type literals of pgmi_test_plan's `steps` CTE, one per UNION branch."""
    body = tests_sql[tests_sql.index("FUNCTION pg_temp.pgmi_test_plan"):]
    steps = body[body.index("steps AS ("):body.index("SELECT (row_number()")]
    found = []
    for branch in steps.split("UNION ALL"):
        literal = re.search(r"'(\w+)'", branch)
        if literal:
            found.append(literal.group(1))
    return found


def exit_codes() -> list[dict[str, Any]]:
    return [{"code": int(m), "name": EXIT_NAMES[m.name], "description": EXIT_DESCRIPTIONS[m.name]} for m in Exit]


def build_contract() -> dict[str, Any]:
    """The contract object printed by `pgmi ai contract` and returned by the `ai_contract` tool."""
    all_sql = "\n".join(read_sql(name) for name in SCHEMA_FILES)
    tests_sql = read_sql("session_tests.sql")
    public = [f for f in functions(all_sql) if f["name"] not in INTERNAL_FUNCTIONS]
    event = event_type(tests_sql)
    event["events"] = emitted_events(read_sql("session_contract_v1_tests.sql"))
    event["note"] = EVENT_NOTE
    return {
        "api_version": "1",
        "views": views(read_sql("session_contract_v1.sql")),
        "functions": sorted(public, key=lambda f: f["name"]),
        "types": [event],
        "step_types": step_types(tests_sql),
        "step_types_note": STEP_TYPES_NOTE,
        "exit_codes": exit_codes(),
        "macros": MACROS,
        "execution_contract": EXECUTION_CONTRACT,
    }


def contract_json() -> str:
    import json

    return json.dumps(build_contract(), indent=2, ensure_ascii=False) + "\n"
