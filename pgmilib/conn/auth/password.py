"""Standard password authentication: the resolved password, else `.pgpass` (per connection)."""

from __future__ import annotations

from pgmilib.conn.auth.base import AuthProvider
from pgmilib.redact import register_secret

TYPE_CHECKING = False  # typing's flag without importing typing at run time; type checkers take it as true
if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams


class PasswordAuth(AuthProvider):
    """The password from the connection string or $PGPASSWORD; None lets `.pgpass` answer."""

    name = "password"
    label = "password"
    needs_pgpass = True

    def password(self, params: ConnParams, database: str) -> str | None:
        register_secret(params.password)
        return params.password
