"""The benchmark's floors (bench/gen.py) do the work of the deploys they are compared with.

A floor is the limit pgmi is measured against, so it must not skip work pgmi cannot skip. Up to
GEN_VERSION 4 the floors set `default_toast_compression = lz4` for their whole session: the
objects their loop created (function bodies, view rules) went into the catalogs lz4-compressed
instead of with the server's default, and the mixed workload's loop ran ~10 % faster than the
very same loop in pgmi's session (bench/ANALYSIS.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pg8000.exceptions
import pg8000.native
import pytest
from projects import server_has_lz4


def _bench_gen():
    """bench/gen.py, loaded from its file (bench/ is not a package, and stays off sys.path)."""
    spec = importlib.util.spec_from_file_location("bench_gen", Path(__file__).resolve().parents[1] / "bench" / "gen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_floor_compresses_its_content_column_and_nothing_else(pg, fresh_db):
    conn = pg8000.native.Connection(**pg.conn_kwargs(fresh_db))
    try:
        gen = _bench_gen()
        head = gen.FLOOR_HEAD.replace("COPY pgmi_files FROM STDIN;\n", "")
        assert head != gen.FLOOR_HEAD
        if not server_has_lz4(conn):  # the floors need a server with lz4 (the bench's has it); one without refuses them at once
            with pytest.raises(pg8000.exceptions.DatabaseError, match="0A000"):
                conn.run(head)
            return
        conn.run(head)
        conn.run("INSERT INTO pgmi_files VALUES ('./a.sql', repeat('SELECT 1; ', 1000), 'c')")
        # A body well over the 2 KB at which the server compresses a catalog row's values.
        conn.run("CREATE FUNCTION floor_probe() RETURNS text LANGUAGE sql AS $f$ SELECT '" + "x" * 8000 + "' $f$")
        rows = conn.run(
            "SELECT (SELECT pg_column_compression(content) FROM pg_temp.pgmi_files), "
            "(SELECT pg_column_compression(prosrc) FROM pg_proc WHERE proname = 'floor_probe'), "
            "current_setting('default_toast_compression')")
        assert rows == [["lz4", rows[0][2], rows[0][2]]]
        assert rows[0][2] != "lz4"  # the server's default is pglz, so the check above tells the column's lz4 from it
    finally:
        conn.close()
