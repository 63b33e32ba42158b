"""The connection service file (PGSERVICE, `service=`): libpq's pg_service.conf lookup."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pgmilib.conn.conninfo import params_from_pairs
from pgmilib.conn.params import ConnParams
from pgmilib.conn.pgpass import home_dir
from pgmilib.errors import ConfigError, go_quote


def service_lookup(name: str, environ: Mapping[str, str]) -> ConnParams:
    """The entries of service `name`: $PGSERVICEFILE or ~/.pg_service.conf, then the system file.

    Returned as ConnParams with `given` listing the keys the service set. An unknown service
    is a ConfigError, as in libpq (a typo must not silently connect elsewhere).
    """
    import configparser

    candidates = [environ.get("PGSERVICEFILE") or os.path.join(home_dir(environ), ".pg_service.conf")]
    sysconf = environ.get("PGSYSCONFDIR")
    candidates.append(os.path.join(sysconf, "pg_service.conf") if sysconf else "/etc/postgresql-common/pg_service.conf")
    for path in candidates:
        if not os.path.isfile(path):
            continue
        parser = configparser.RawConfigParser(strict=False, interpolation=None, comment_prefixes=("#",),
                                              delimiters=("=",))
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read service file {path}: {type(error).__name__}") from None
        if parser.has_section(name):
            return params_from_pairs(list(parser.items(name)), "libpq")
    raise ConfigError(f"definition of service {go_quote(name)} not found (looked in {', '.join(candidates)})")


def merge_service(params: ConnParams, service: ConnParams) -> None:
    """Fill the fields `params` did not set from a service entry (explicit values win)."""
    for name in service.given:
        if name not in params.given:
            setattr(params, name, getattr(service, name))
            params.given.add(name)
    for key, value in service.options.items():
        params.options.setdefault(key, value)


