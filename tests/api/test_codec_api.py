"""The remote codec endpoint: an admin key decodes what the workers sealed; nothing else does."""

from __future__ import annotations

import httpx
import pytest
import redis
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from gateway.audit import Audit
from gateway.keys import ADMIN, OPERATOR, QUERY, KeyStore
from keel.config import Settings
from keel.keyring import load_key_ring
from stores.data_keys import TenantKeys
from temporal.codec import TENANT, EncryptionCodec
from temporal.data_converter import DATA_CONVERTER, data_converter
from tests.api.conftest import Auth, expect_error

pytestmark = [pytest.mark.stack]


def _sealed(settings: Settings, tenant: str, text: str = "a secret question") -> str:
    """A payload as a tenant's workflow seals it (with the tenant's own data key)."""
    codec = data_converter(settings).payload_codec
    assert isinstance(codec, EncryptionCodec)
    plain = DATA_CONVERTER.payload_converter.to_payloads([text])
    return json_format.MessageToJson(Payloads(payloads=[codec.seal(p, tenant=tenant) for p in plain]))


async def test_admin_decodes_sealed_payloads(
    api: httpx.AsyncClient, settings: Settings, tenant: str, auth: Auth
) -> None:
    sealed = _sealed(settings, tenant)
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


async def test_a_codec_session_cookie_decodes_until_its_key_is_revoked(
    api: httpx.AsyncClient, settings: Settings, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    """The dev UI has no login: an operator opens a session with an admin key, and the UI's
    requests carry its cookie instead."""
    sealed = _sealed(settings, tenant)
    assert "Include cross-origin credentials" in (await api.get("/codec/login")).text
    expect_error(await api.post("/codec/session", headers=auth(tenant, roles=[QUERY])), 403, "role_forbidden")

    record, token = KeyStore(redis_client).create(tenant=tenant, roles=[ADMIN])
    opened = await api.post("/codec/session", headers={"Authorization": f"Bearer {token}"})
    assert opened.status_code == 204 and "httponly" in opened.headers["set-cookie"].lower()
    cookie = {"Cookie": f"keel_codec={opened.cookies['keel_codec']}"}
    api.cookies.clear()  # only what the test sends explicitly
    decoded = await api.post("/codec/decode", content=sealed, headers=cookie)
    assert decoded.status_code == 200, decoded.text
    assert "a secret question" not in opened.headers["set-cookie"]
    expect_error(
        await api.post("/codec/decode", content=sealed, headers={"Cookie": "keel_codec=guess"}), 401, "invalid_key"
    )
    KeyStore(redis_client).revoke(record.key_id)
    expect_error(await api.post("/codec/decode", content=sealed, headers=cookie), 403, "role_forbidden")


async def test_decodes_are_audited_and_a_session_can_be_closed(
    api: httpx.AsyncClient, settings: Settings, redis_client: redis.Redis, tenant: str
) -> None:
    sealed = _sealed(settings, tenant, "x")
    record, token = KeyStore(redis_client).create(tenant=tenant, roles=[ADMIN])
    opened = await api.post("/codec/session", headers={"Authorization": f"Bearer {token}"})
    cookie = {"Cookie": f"keel_codec={opened.cookies['keel_codec']}"}
    api.cookies.clear()
    assert (await api.post("/codec/decode", content=sealed, headers=cookie)).status_code == 200
    decodes = [e for e in Audit(redis_client).read(tenant) if e.event == "codec_decode"]
    assert decodes and decodes[0].key_id == record.key_id and decodes[0].detail["payloads"] == 1

    closed = await api.delete("/codec/session", headers=cookie)
    assert closed.status_code == 204 and "keel_codec=" in closed.headers["set-cookie"]
    expect_error(await api.post("/codec/decode", content=sealed, headers=cookie), 401, "invalid_key")


async def test_the_session_cookie_is_secure_over_tls(
    api: httpx.AsyncClient, redis_client: redis.Redis, tenant: str
) -> None:
    _, token = KeyStore(redis_client).create(tenant=tenant, roles=[ADMIN])
    opened = await api.post("https://keel/codec/session", headers={"Authorization": f"Bearer {token}"})
    assert opened.status_code == 204 and "secure" in opened.headers["set-cookie"].lower()


def _texts(resp: httpx.Response) -> list[str | None]:
    """Each returned payload's text, or None where it is still sealed."""
    out = []
    for p in json_format.Parse(resp.text, Payloads()).payloads:
        sealed = p.metadata.get("encoding") == b"binary/encrypted"
        out.append(None if sealed else DATA_CONVERTER.payload_converter.from_payloads([p], [str])[0])
    return out


async def test_a_tenant_opens_only_its_own_payloads_and_an_erasure_shreds_them(
    api: httpx.AsyncClient, settings: Settings, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    other = f"{tenant}x"
    mine, theirs = _sealed(settings, tenant, "mine"), _sealed(settings, other, "theirs")
    both = json_format.MessageToJson(
        Payloads(
            payloads=[*json_format.Parse(mine, Payloads()).payloads, *json_format.Parse(theirs, Payloads()).payloads]
        )
    )
    admin = auth(tenant, roles=[ADMIN])
    resp = await api.post("/codec/decode", content=both, headers=admin)
    assert resp.status_code == 200 and _texts(resp) == ["mine", None]  # the other tenant's stays sealed
    # A payload sealed with the deployment's key is no tenant's: operators only.
    codec = data_converter(settings).payload_codec
    assert isinstance(codec, EncryptionCodec)
    deployment = json_format.MessageToJson(
        Payloads(payloads=[codec.seal(p) for p in DATA_CONVERTER.payload_converter.to_payloads(["ops"])])
    )
    assert _texts(await api.post("/codec/decode", content=deployment, headers=admin)) == [None]
    _, token = KeyStore(redis_client).create(tenant="ops", roles=[OPERATOR], name="operator")
    operator = {"Authorization": f"Bearer {token}"}
    assert _texts(await api.post("/codec/decode", content=both, headers=operator)) == ["mine", "theirs"]
    assert _texts(await api.post("/codec/decode", content=deployment, headers=operator)) == ["ops"]
    # No tenant's admin makes an operator key.
    made = await api.post("/v1/admin/keys", json={"roles": ["operator"]}, headers=admin)
    expect_error(made, 403, "role_forbidden")
    # What a tenant's admin seals is bound to its tenant.
    plain = json_format.MessageToJson(Payloads(payloads=DATA_CONVERTER.payload_converter.to_payloads(["new"])))
    encoded = json_format.Parse((await api.post("/codec/encode", content=plain, headers=admin)).text, Payloads())
    assert encoded.payloads[0].metadata[TENANT] == tenant.encode()

    TenantKeys(lambda: redis_client, load_key_ring(settings)).destroy(tenant)  # as an erasure does
    expect_error(await api.post("/codec/decode", content=mine, headers=operator), 410, "tenant_erased")
