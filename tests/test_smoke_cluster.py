def test_cluster_answers(conn):
    assert conn.run("select 1 + 1")[0][0] == 2


def test_fresh_db_is_created(pg, fresh_db):
    import pg8000.native

    c = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    assert c.run("select current_database()")[0][0] == fresh_db
    c.close()
