"""Temporal worker versioning: which release's workers take new workflows.

A release's workers poll as one version (`Settings.worker_build_id`) of the deployment
(`Settings.worker_deployment`); nothing is routed to a version until it is made current. Making
the new release current sends new workflows to it, while pinned ones (queries) finish on the
workers that started them, which can then be stopped (`infra.worker.deployment_config`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"


def workflow_code_id() -> str:
    """A build id that changes when the workflows' code does (what a running workflow's history
    must agree with), and only then."""
    digest = hashlib.sha256()
    for path in sorted(WORKFLOWS.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"wf-{digest.hexdigest()[:12]}"


@dataclass(frozen=True, kw_only=True)
class DeploymentState:
    name: str
    current: str  # the current version's build id ("": none yet)
    versions: list[str]  # every build id that has polled, oldest first


async def describe(client: Client, deployment: str) -> DeploymentState:
    reply = await client.workflow_service.describe_worker_deployment(
        DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
    )
    info = reply.worker_deployment_info
    summaries = sorted(info.version_summaries, key=lambda v: v.create_time.ToDatetime())
    return DeploymentState(
        name=info.name,
        current=info.routing_config.current_deployment_version.build_id,
        versions=[v.deployment_version.build_id for v in summaries],
    )


async def promote(client: Client, deployment: str, build_id: str, identity: str = "keel") -> None:
    """Make `build_id` the current version: new workflows go to its workers from now on. Its
    workers must have polled already (the server refuses a version it has not seen)."""
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace, deployment_name=deployment, build_id=build_id, identity=identity
        )
    )
