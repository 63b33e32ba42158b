def test_cluster_answers(conn):
    assert conn.run("select 1 + 1")[0][0] == 2


def test_fresh_db_is_created(pg, fresh_db):
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    assert c.run("select current_database()")[0][0] == fresh_db
    c.close()


def test_run_pgmi_reaches_the_entry_point(run_pgmi):
    result = run_pgmi("version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pgmi ")
