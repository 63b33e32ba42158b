"""Connections: strings, precedence, TLS, the pg8000 connection and its auth providers.

`SSLMODES` lives here, not in params.py, so that building the CLI's help text does not
import dataclasses (every `pgmi version` pays for what the parser imports).
"""

#: libpq's sslmode values, weakest first.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
