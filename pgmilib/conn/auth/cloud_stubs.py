"""Cloud methods whose token flows are not part of this build yet (exit 10, unsupported auth)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgmilib.conn.auth.base import AuthProvider
from pgmilib.errors import Marker, PgmiError

if TYPE_CHECKING:
    from pgmilib.conn.params import ConnParams


class _NotYet(AuthProvider):
    def password(self, params: ConnParams, database: str) -> str | None:
        raise PgmiError(f"{self.label} authentication is not available in this build yet; "
                        "use password authentication (connection string, $PGPASSWORD or ~/.pgpass)",
                        markers=[Marker.UNSUPPORTED_AUTH])


class AzureAuth(_NotYet):
    name = "azure"
    label = "Azure Entra ID"


class AwsIamAuth(_NotYet):
    name = "aws"
    label = "AWS IAM"


class GoogleAuth(_NotYet):
    name = "google"
    label = "Google Cloud SQL IAM"
    retries = False
