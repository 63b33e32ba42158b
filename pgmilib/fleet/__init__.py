"""Fleet deploys: one project to many databases (`pgmi deploy DIR --targets FILE`).

`targets` loads the list (a targets file or pgmi.yaml's `targets:`), `select` applies
--only, --shard and --canary, `runner` deploys each target with `pgmilib.deploy.deploy()`
in a bounded thread pool, `report` prints the lines, the table and the --json document.
The CLI side is pgmilib/cli/fleet.py; the guide is docs/FLEET.md.
"""

from pgmilib.fleet.runner import FleetCancellation, FleetResult, TargetOutcome, request_for, run_fleet
from pgmilib.fleet.select import parse_shard, select, shard
from pgmilib.fleet.targets import Target, load_targets_file, parse_targets, targets_from_project

__all__ = ["FleetCancellation", "FleetResult", "Target", "TargetOutcome", "load_targets_file", "parse_shard",
           "parse_targets", "request_for", "run_fleet", "select", "shard", "targets_from_project"]
