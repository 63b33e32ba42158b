"""Reading the server about other sessions while a deploy holds it.

Two features share this package: the rehearsal's lock report (`--rehearse`: which relations
the deploy locks and who would block it now) and the live watcher (a second connection that
says what a running deploy is doing and what it waits for). `sessions` describes another
backend the same way for both; the SQL lives in `sql/observe_*.sql`.
"""
