"""The cluster profile, started once for the package's tests (its processes load their models once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.cluster import ClusterProfile, start_profile
from tests.conftest import TEST_CODEC_KEY


@pytest.fixture(scope="package")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProfile]:
    started = start_profile(
        tmp_path_factory.mktemp("cluster"),
        codec_key=TEST_CODEC_KEY,
        extra_env={"KEEL_CACHE_ENABLED": "false", "KEEL_NEW_TENANT_ENCODER": "default"},
    )
    yield started
    started.stop()
