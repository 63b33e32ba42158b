"""The watcher's words without a server: status text, log-line timing, MCP progress, the status block."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from pgmilib.observe.notify import ProgressNotifier, mcp_watch, progress_token
from pgmilib.observe.probe import Progress, ServerView
from pgmilib.observe.render import LogLines, Snapshot, progress_phrase, status_text, unit_label
from pgmilib.observe.sessions import SessionInfo
from pgmilib.observe.watch import WatchSettings
from pgmilib.output import Output, fit_width

BLOCKER = SessionInfo(pid=4242, user="alice", application="psql", state="idle in transaction", seconds=720,
                      query="UPDATE orders SET total = 0")
WAITING = ServerView(state="active", wait_event_type="Lock", wait_event="relation", blockers=(BLOCKER,),
                     lock_mode="AccessExclusiveLock", lock_type="relation", lock_relation="orders")
INDEX = Progress("CREATE INDEX", "building index: scanning table", 4200, 10000, "blocks", "orders")


def _snap(**kw) -> Snapshot:
    base = {"elapsed": 12.4, "where": "deploy.sql unit 2/5 (line 14)", "unit_key": 1, "unit_seconds": 3.0,
            "notice": "applying ./schema/orders.sql"}
    return Snapshot(**{**base, **kw})


def test_status_text_names_the_blocker_as_the_issue_shows_it():
    text = status_text(_snap(server=WAITING, lock_wait_seconds=8))
    assert text == ("12s | deploy.sql unit 2/5 (line 14) | waiting for a lock held by pid 4242 (psql, idle in "
                    "transaction for 12m0s: UPDATE orders SET total = 0) | applying ./schema/orders.sql")


def test_status_text_with_detail_names_the_lock_and_the_user():
    text = status_text(_snap(server=WAITING), detail=True)
    assert "waiting for a lock (AccessExclusiveLock on orders) held by pid 4242 (user alice, psql, " in text


def test_many_blockers_are_counted_not_listed():
    view = ServerView(wait_event_type="Lock", blockers=tuple(SessionInfo(pid=p) for p in range(1, 7)))
    assert status_text(_snap(server=view, notice="")).endswith(
        "waiting for a lock held by pid 1; pid 2; pid 3 and 3 more session(s)")


def test_progress_phrases():
    assert progress_phrase(INDEX) == "CREATE INDEX on orders: building index: scanning table 42% (4200 of 10000 blocks)"
    copy = Progress("COPY FROM", None, 3 * 1024 * 1024, 0, "bytes", "big", 120000)
    assert progress_phrase(copy) == "COPY FROM on big: 3.0 MB, 120000 tuples"
    assert progress_phrase(Progress("VACUUM", "initializing", 0, 0, "blocks", "-")) == "VACUUM: initializing"
    assert status_text(_snap(server=ServerView(state="active", progress=(INDEX,)), notice="")).endswith(
        "| CREATE INDEX on orders: building index: scanning table 42% (4200 of 10000 blocks)")


def test_unit_labels():
    assert unit_label(-1, 0, 0) == "preparing the session"
    assert unit_label(0, 1, 1) == "deploy.sql"
    assert unit_label(2, 5, 14) == "deploy.sql unit 3/5 (line 14)"


def test_log_lines_after_five_seconds_then_every_thirty_then_the_end():
    log = LogLines(WatchSettings())
    said = []
    for second in range(70):
        said += [(second, line) for line in log.lines(_snap(server=WAITING, lock_wait_seconds=float(second),
                                                            unit_seconds=float(second)))]
    said += [(70, line) for line in log.lines(_snap(server=ServerView(state="active"), unit_seconds=70.0))]
    assert [s for s, _ in said] == [5, 35, 65, 70]
    assert said[0][1] == ("pgmi: deploy.sql unit 2/5 (line 14): waiting for a lock (AccessExclusiveLock on orders) "
                          "held by pid 4242 (user alice, psql, idle in transaction for 12m0s: UPDATE orders SET "
                          "total = 0) (for 5s so far)")
    assert said[1][1].startswith("pgmi: deploy.sql unit 2/5 (line 14): still waiting for a lock")
    assert said[3][1] == "pgmi: the lock wait ended after 1m9s; the deploy goes on"


def test_a_long_unit_gets_a_line_every_minute_with_its_progress():
    log = LogLines(WatchSettings())
    view = ServerView(state="active", progress=(INDEX,))
    said = []
    for second in range(130):
        said += log.lines(_snap(server=view, unit_seconds=float(second)))
    assert said == [f"pgmi: deploy.sql unit 2/5 (line 14) running for {t}: CREATE INDEX on orders: building index: "
                    "scanning table 42% (4200 of 10000 blocks) (last notice: applying ./schema/orders.sql)"
                    for t in ("1m0s", "2m0s")]
    assert log.lines(_snap(unit_key=2, unit_seconds=61.0)) == [  # a new unit: its own clock
        "pgmi: deploy.sql unit 2/5 (line 14) running for 1m1s (last notice: applying ./schema/orders.sql)"]
    preparing = LogLines(WatchSettings())
    assert preparing.lines(_snap(where="preparing the session", unit_key=-1, unit_seconds=60.0, notice="")) == [
        "pgmi: still preparing the session after 1m0s"]


def test_mcp_progress_increases_and_carries_a_view_s_total():
    sent = []
    notifier = ProgressNotifier(sent.append, "tok-1", heartbeat=5)
    notifier(_snap(elapsed=1))
    notifier(_snap(elapsed=2))  # no news, no heartbeat due: nothing sent
    notifier(_snap(elapsed=3, server=WAITING))
    notifier(_snap(elapsed=4, server=ServerView(state="active", progress=(INDEX,))))
    notifier(_snap(elapsed=9.5, server=ServerView(state="active", progress=(INDEX,))))  # heartbeat
    params = [m["params"] for m in sent]
    assert [m["method"] for m in sent] == ["notifications/progress"] * 4
    assert {p["progressToken"] for p in params} == {"tok-1"}
    assert [p["progress"] for p in params] == [1.0, 2.0, 4200.0, 4201.0]
    assert params[2]["total"] == 10000.0 and "total" not in params[3]
    assert "pid 4242 (user alice, psql, idle in transaction" in params[1]["message"]


def test_progress_tokens_are_strings_or_integers_only():
    assert progress_token({"progressToken": "a"}) == "a" and progress_token({"progressToken": 7}) == 7
    assert progress_token({"progressToken": True}) is None and progress_token({"progressToken": 1.5}) is None
    assert progress_token(None) is None and progress_token({}) is None
    assert mcp_watch({}, print).progress is None and mcp_watch({"progressToken": 1}, None).progress is None
    assert mcp_watch({"progressToken": 1}, print).progress is not None
    assert mcp_watch({"progressToken": 1}, print).terminal is False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_block_is_erased_before_a_line_and_drawn_again_below_it():
    out = Output(stderr=_Terminal(), stdout=io.StringIO())
    out.status("12s | deploy.sql")
    out.info("a line")
    out.status(["alpha: 1s", "beta: 2s"])
    out.warn("careful")
    out.status(None)
    assert out.stderr.getvalue() == ("12s | deploy.sql"
                                     "\r\x1b[Ka line\n12s | deploy.sql"
                                     "\r\x1b[Kalpha: 1s\nbeta: 2s"
                                     "\r\x1b[K\x1b[1A\x1b[KWARNING: careful\nalpha: 1s\nbeta: 2s"
                                     "\r\x1b[K\x1b[1A\x1b[K")


def test_status_is_cut_to_the_width_and_cleaned_of_control_characters():
    out = Output(stderr=_Terminal(), stdout=io.StringIO())  # not a real terminal: 80 columns assumed
    out.status("x" * 100 + "\x1b]0;title\x07")
    shown = out.stderr.getvalue()
    assert shown == "x" * 76 + "..." and "\x1b" not in shown


def test_status_off_a_terminal_prints_nothing():
    out = Output(stderr=io.StringIO(), stdout=io.StringIO())
    out.status("12s | deploy.sql")
    out.status(None)
    assert out.stderr.getvalue() == ""


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_fit_width_never_exceeds_the_width(text, width):
    import unicodedata

    def columns(s: str) -> int:
        return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    fitted = fit_width(text, width)
    assert columns(fitted) <= width
    if columns(text) <= width:
        assert fitted == text
    else:
        assert fitted.endswith("..."[:width]) and text.startswith(fitted[: len(fitted) - min(3, width)])
