"""The remote codec endpoint: an admin key decodes what the workers sealed; nothing else does."""

from __future__ import annotations

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from gateway.keys import ADMIN, QUERY
from keel.config import Settings
from temporal.data_converter import DATA_CONVERTER, data_converter
from tests.api.conftest import Auth, expect_error

pytestmark = [pytest.mark.stack]


async def test_admin_decodes_sealed_payloads(
    api: httpx.AsyncClient, settings: Settings, tenant: str, auth: Auth
) -> None:
    plain = DATA_CONVERTER.payload_converter.to_payloads(["a secret question"])
    codec = data_converter(settings).payload_codec
    assert codec is not None
    sealed = json_format.MessageToJson(Payloads(payloads=await codec.encode(plain)))
    assert "a secret question" not in sealed
    expect_error(
        await api.post("/codec/decode", content=sealed, headers=auth(tenant, roles=[QUERY])), 403, "role_forbidden"
    )
    expect_error(await api.post("/codec/decode", content=sealed), 401, "missing_key")
    resp = await api.post("/codec/decode", content=sealed, headers=auth(tenant, roles=[ADMIN]))
    assert resp.status_code == 200, resp.text
    decoded = json_format.Parse(resp.text, Payloads())
    assert DATA_CONVERTER.payload_converter.from_payloads(list(decoded.payloads), [str]) == ["a secret question"]
    bad = await api.post("/codec/decode", content=b"{not json", headers=auth(tenant, roles=[ADMIN]))
    expect_error(bad, 400, "bad_input")
