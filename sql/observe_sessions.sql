-- observe_sessions.sql -- who other sessions are, for the two features that read the server
-- while (or just before) a deploy holds it: the rehearsal's lock report ("this deploy would
-- queue behind pid 4242") and the live watcher ("waiting for a lock held by pid 4242").
-- Both describe another session the same way, so the description is one query, read by
-- pgmilib/observe/sessions.py: `read_sql_section("observe_sessions.sql", NAME)`.
--
-- Without pg_read_all_stats (or membership in the other session's role) the server hides
-- usename-independent columns of other users' sessions (query, state, application_name
-- come back NULL): the caller prints what it gets and never fails for a missing column.

-- name: describe_pids
-- One row per pid in :pids that still exists. `seconds` is how long the session has been
-- in its current state (state_change), which is what a user needs to judge "idle in
-- transaction for 12 min"; the query's first line is cut on the server so a 50 MB
-- statement never crosses the wire for a status line.
SELECT a.pid                                                        AS pid,
       a.usename::text                                              AS username,
       a.application_name                                           AS application_name,
       a.state                                                      AS state,
       extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS seconds,
       a.wait_event_type                                            AS wait_event_type,
       a.wait_event                                                 AS wait_event,
       left(split_part(ltrim(a.query, E' \t\r\n'), E'\n', 1), 200)  AS query_first_line
  FROM pg_stat_activity AS a
 WHERE a.pid = ANY (CAST(:pids AS int[]))
 ORDER BY array_position(CAST(:pids AS int[]), a.pid);
