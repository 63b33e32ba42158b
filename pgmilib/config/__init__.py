"""Project configuration, one module per file format; this package re-exports their public API.

- `project_file`: pgmi.yaml (strict, text-preserving)
- `dotenv`: the project's .env, merged into an explicit environment mapping
- `params`: --param / --params-file parsing, merging and validation
- `durations`: Go durations, the deploy timeout (one rule for every caller), other duration flags
- `files`: the one safe reader all of them use (regular files only)
"""

from pgmilib.config.dotenv import DOTENV_FILE, load_dotenv, parse_env_text
from pgmilib.config.durations import (
    DEFAULT_TIMEOUT,
    TIMEOUT_ARGUMENT,
    TIMEOUT_FLAG,
    format_duration,
    parse_duration,
    parse_duration_flag,
    parse_timeout,
    resolve_timeout,
    timeout_origin,
)
from pgmilib.config.params import (
    is_secret_name,
    load_params_files,
    merge_params,
    parse_param,
    parse_params_text,
    register_secret_params,
    validate_params,
)
from pgmilib.config.project_file import (
    CONFIG_FILE,
    CONNECTION_KEYS,
    ProjectConfig,
    load_project_config,
    write_project_config,
)

__all__ = [
    "CONFIG_FILE",
    "CONNECTION_KEYS",
    "DEFAULT_TIMEOUT",
    "DOTENV_FILE",
    "TIMEOUT_ARGUMENT",
    "TIMEOUT_FLAG",
    "ProjectConfig",
    "format_duration",
    "is_secret_name",
    "load_dotenv",
    "load_params_files",
    "load_project_config",
    "merge_params",
    "parse_duration",
    "parse_duration_flag",
    "parse_env_text",
    "parse_param",
    "parse_params_text",
    "parse_timeout",
    "register_secret_params",
    "resolve_timeout",
    "timeout_origin",
    "validate_params",
    "write_project_config",
]
