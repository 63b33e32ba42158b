"""`make mutation`: mutmut over the security rules, scored on the functions that hold them.

Runs in a scratch copy of the checkout (build/mutation), so the working tree is never edited,
with the fast test files below (each mutant re-runs only the tests that reach its function).
Prints the kill rate per module and every surviving mutant; exits 1 below the target.
docs/RELIABILITY.md "Mutation testing" has the last score and why each survivor is equivalent.

    python tests/mutation/run.py [--keep] [--jobs N] [--module pgmilib/redact.py ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "mutation"
TARGET = 95.0

#: module -> the functions (Class.method for methods) that hold a security rule; None = all of it.
SECURITY: dict[str, list[str] | None] = {
    "pgmilib/redact.py": None,
    "pgmilib/config/params.py": ["is_secret_name", "register_secret_params"],
    "pgmilib/conn/params.py": ["check_client_cert_pair"],
    "pgmilib/conn/tls.py": None,
    "pgmilib/conn/pgpass.py": None,
    "pgmilib/conn/libpqkeys.py": ["RequireAuth.refusal", "parse_require_auth", "check_options"],
    "pgmilib/deploy/lock.py": ["acquire", "wait_for_no_deploy", "release"],
    "pgmilib/deploy/dbadmin.py": ["quote_ident", "check_database_name", "_printable", "quote_literal",
                                  "check_overwrite_allowed", "RefusingApprover.approve",
                                  "AcceptingApprover.approve", "default_approver"],
    "pgmilib/cli/approvers.py": ["ForcedApprover.approve", "InteractiveApprover.approve", "choose_approver"],
    "pgmilib/conn/auth/sigv4.py": None,
    "pgmilib/conn/auth/rsa.py": ["sign_rs256", "b64url", "jwt_rs256"],
    "pgmilib/conn/auth/http.py": ["_address", "is_loopback_host", "is_local_host"],
    "pgmilib/conn/auth/azure.py": ["AzureAuth._token_url", "AzureAuth._certificate_assertion"],
    "pgmilib/conn/auth/google.py": ["CloudSqlTls.wrap_socket", "instance_tls", "GoogleAuth._service_account"],
    "pgmilib/mcp/tools.py": ["_unicode", "check_arguments", "rejected", "require", "error_detail"],
    "pgmilib/mcp/tool_deploy.py": ["_check_safety"],
    "pgmilib/errors.py": ["exit_code"],
}

#: The fast tests that pin those rules (real server and real TLS where the rule touches the wire).
TESTS = [
    "tests/test_security_redact.py", "tests/test_security_tls.py", "tests/test_security_guards.py",
    "tests/test_security_cloud.py", "tests/test_security_mcp.py", "tests/test_security_lock.py",
    "tests/test_security_pgpass.py", "tests/test_connstr.py", "tests/test_dbadmin.py", "tests/test_conn_keys.py",
    "tests/test_tls_crl.py",
]

_NAME = re.compile(r"^\s*(?P<module>[\w.]+?)\.x(?:_(?P<func>\w+?)|ǁ(?P<cls>\w+)ǁ(?P<meth>\w+?))__mutmut_(?P<n>\d+): "
                   r"(?P<status>.+?)\s*$")
_KILLED = {"killed", "timeout", "caught by type check"}


def copy_checkout(work: Path) -> None:
    """The files git knows (tracked or not ignored) of the checkout, into a fresh `work`."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file() and not rel.startswith("build/"):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / rel)


def write_config(work: Path, modules: list[str]) -> None:
    lines = ["[mutmut]", "source_paths = pgmilib", "only_mutate ="]
    lines += [f"    {m}" for m in modules]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in TESTS]
    # file order (the random order is for `make test`); no cache writes into the copy
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    --random-order-bucket=none"]
    lines += ["also_copy =", "    sql", "    templates", "    pgmi.py", "    examples"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


def results(work: Path) -> list[dict[str, str]]:
    done = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                          capture_output=True, text=True, check=True)
    found = []
    for line in done.stdout.splitlines():
        m = _NAME.match(line)
        if m:
            func = m["func"] or f"{m['cls']}.{m['meth']}"
            found.append({"module": m["module"], "function": func, "name": line.split(":")[0].strip(),
                          "status": m["status"]})
    return found


def module_path(dotted: str) -> str:
    return dotted.replace(".", "/") + ".py"


def patterns(modules: list[str]) -> list[str]:
    """mutmut's mutant-name patterns for the security functions of `modules` (the rest is not run)."""
    found = []
    for module in modules:
        dotted = module[:-3].replace("/", ".")
        for function in SECURITY.get(module) or ["*"]:
            if function == "*":
                found.append(f"{dotted}.*")
            elif "." in function:
                cls, meth = function.split(".")
                found.append(f"{dotted}.x\u01c1{cls}\u01c1{meth}__mutmut_*")
            else:
                found.append(f"{dotted}.x_{function}__mutmut_*")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--module", action="append", help="mutate only this module (repeatable)")
    parser.add_argument("--keep", action="store_true", help="reuse build/mutation (mutmut resumes)")
    parser.add_argument("--show", action="store_true", help="print the diff of every survivor")
    args = parser.parse_args(argv)
    modules = args.module or list(SECURITY)
    if not args.keep or not WORK.exists():
        copy_checkout(WORK)
        write_config(WORK, modules)
    env = {**os.environ, "PGMI_NON_INTERACTIVE": "1"}
    env.pop("CI", None)
    # `python -m mutmut`, not the script beside it: a script's #! names the venv it was installed from
    mutmut = [sys.executable, "-m", "mutmut"]
    run = subprocess.run([*mutmut, "run", "--max-children", str(args.jobs), *patterns(modules)], cwd=WORK,
                         env=env, stdout=subprocess.DEVNULL, check=False)
    if run.returncode:
        print(f"mutation: mutmut run failed (exit {run.returncode}); see {WORK}", file=sys.stderr)
        return run.returncode
    rows = [r for r in results(WORK) if module_path(r["module"]) in modules]
    total_killed = total = 0
    survivors = []
    print(f"{'module':34} {'security mutants':>16} {'killed':>7} {'score':>7}   (whole module)")
    for module in modules:
        wanted = SECURITY.get(module)
        mine = [r for r in rows if module_path(r["module"]) == module]
        scored = [r for r in mine if wanted is None or r["function"] in wanted]
        killed = sum(r["status"] in _KILLED for r in scored)
        all_killed = sum(r["status"] in _KILLED for r in mine)
        total += len(scored)
        total_killed += killed
        survivors += [r for r in scored if r["status"] not in _KILLED]
        score = 100.0 * killed / len(scored) if scored else 100.0
        print(f"{module:34} {len(scored):16} {killed:7} {score:6.1f}%   ({all_killed}/{len(mine)})")
    score = 100.0 * total_killed / total if total else 100.0
    print(f"{'all security functions':34} {total:16} {total_killed:7} {score:6.1f}%   target {TARGET:.0f}%")
    if survivors:
        print("\nsurvivors (each must be equivalent; see docs/RELIABILITY.md):")
        for r in survivors:
            print(f"  {r['name']}: {r['status']}")
            if args.show:
                diff = subprocess.run([*mutmut, "show", r["name"]], cwd=WORK,
                                      capture_output=True, text=True, check=False).stdout
                print("".join(f"      {line}\n" for line in diff.splitlines() if line[:2] in ("- ", "+ ")), end="")
    return 0 if score >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
