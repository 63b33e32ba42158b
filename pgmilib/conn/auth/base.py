"""The provider interface: how one connection attempt gets its secret (and, rarely, its socket).

`conn.connect.open_connection` asks the provider chosen by `params.auth_method` for the
password at the start of **every** attempt (cloud tokens are fetched
anew per attempt, so a retry never reuses an expired token).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    import ssl
    from typing import Any, ClassVar

    from pgmilib.conn.deadline import Deadline
    from pgmilib.conn.params import ConnParams


class AuthProvider:
    """Base class: one subclass per authentication method, registered in `conn/auth/__init__.py`."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # human name for messages, e.g. "AWS IAM"
    retries: ClassVar[bool] = True  # connect retries (conn.connect) apply to this method
    needs_pgpass: ClassVar[bool] = False  # fall back to .pgpass when password() gives None

    def __init__(self, environ: Mapping[str, str] | None = None, deadline: Deadline | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.deadline = deadline  # the run's clock: every network wait of the provider obeys it
        self.out: Any = None  # Output for warnings (set by password_for / prepare when there is one)

    def prepare(self, params: ConnParams, out: Any = None) -> ConnParams:
        """Once per `open_connection`, before any attempt: adjust the target (cloud TLS
        defaults, Google's instance address). The default changes nothing."""
        return params

    def ssl_context(self, params: ConnParams) -> ssl.SSLContext | bool | None:
        """A TLS context replacing the sslmode-built one (None: use sslmode as usual; False: no
        SSLRequest, the provider's `open_socket` tunnel is already encrypted)."""
        return None

    def password(self, params: ConnParams, database: str) -> str | None:
        """The password (or token) for one attempt against `database`; registered as a secret."""
        raise NotImplementedError

    def open_socket(self, params: ConnParams, timeout: float | None) -> socket.socket | None:
        """A ready transport replacing host/port (None: connect normally)."""
        return None
