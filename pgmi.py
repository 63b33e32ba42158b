#!/usr/bin/env python3
"""pgmi: PostgreSQL-native deployment driver.

This file is only the entry point so that `python3 pgmi.py ...` works from a checkout;
everything else lives in the `pgmilib` package beside it.
"""
import sys

from pgmilib.cli import main

if __name__ == "__main__":
    sys.exit(main())
