"""The snapshot activities: a tenant's backup to a folder, and its restore (pipelines.backup, .restore)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.errors import mapped
from activities.heartbeat import keep_alive
from contracts.backup import BackupInput, BackupOutput, RestoreInput, RestoreOutput
from pipelines.backup import Snapshots
from pipelines.deps import Deps
from pipelines.restore import Restorer


class BackupActivities:
    def __init__(self, deps: Deps) -> None:
        self.snapshots = Snapshots(deps)
        self.restorer = Restorer(deps)

    @activity.defn(name="backup.tenant")
    @mapped
    def backup(self, inp: BackupInput) -> BackupOutput:
        with keep_alive():  # the snapshot is one pass under the tenant's lock: a retry starts it over
            return self.snapshots.backup(inp.tenant, Path(inp.directory))

    @activity.defn(name="restore.tenant")
    @mapped
    def restore(self, inp: RestoreInput) -> RestoreOutput:
        with keep_alive():
            return self.restorer.restore(Path(inp.folder), inp.tenant, restore_api_keys=inp.api_keys)

    def all(self) -> Sequence[Any]:
        return [self.backup, self.restore]
