"""Ids name their tenant, so the codec knows whose key seals a workflow's payloads."""

from __future__ import annotations

from keel import ids


def test_a_workflow_id_names_its_tenant() -> None:
    assert ids.workflow_tenant("query/acme/0f3a") == "acme"
    assert ids.workflow_tenant(ids.ingest_workflow_id("acme", "abc")) == "acme"
    assert ids.workflow_tenant("ingest-batch/acme.20261207-1a2b") == "acme"
    assert ids.workflow_tenant(ids.ingest_group_workflow_id("acme.20261207-1a2b", 0, 8)) == "acme"


def test_workflows_that_are_no_one_tenants_name_none() -> None:
    assert ids.workflow_tenant("erase/acme") is None  # it must replay once acme's key is gone
    assert ids.workflow_tenant("ingest-batch/20261123-130710-e32b70") is None  # a job id from before
    assert ids.workflow_tenant("query/../etc") is None


def test_point_ids_are_deterministic_and_distinct() -> None:
    a = ids.point_id("acme", "doc", "v1", 0, "e1")
    assert a == ids.point_id("acme", "doc", "v1", 0, "e1")
    assert len({a, ids.point_id("acme", "doc", "v1", 1, "e1"), ids.point_id("other", "doc", "v1", 0, "e1")}) == 3
