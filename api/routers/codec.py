"""POST /codec/encode and /codec/decode: Temporal's remote codec protocol, for operators.

The Temporal UI (`--ui-codec-endpoint`, or its Data Encoder setting) and CLI
(`temporal workflow show --codec-endpoint http://127.0.0.1:8000/codec --codec-auth "Bearer $KEEL_ADMIN_KEY"`)
send Payloads as protobuf JSON and get them back decoded, so a failed run can still be read
and replayed. It needs an admin key: the UI must pass it (its access token), or payloads stay sealed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.deps import AdminCaller, SettingsDep
from keel.errors import BadInput
from temporal.codec import EncryptionCodec, load_key_ring

router = APIRouter(prefix="/codec", tags=["ops"])


def _codec(request: Request, settings: SettingsDep) -> EncryptionCodec:
    codec: EncryptionCodec | None = getattr(request.app.state, "codec", None)
    if codec is None:
        codec = request.app.state.codec = EncryptionCodec(load_key_ring(settings))
    return codec


@router.post("/{operation}")
async def transcode(
    operation: Literal["encode", "decode"], request: Request, settings: SettingsDep, admin: AdminCaller
) -> Response:
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as exc:
        raise BadInput(f"the body is not Payloads as protobuf JSON: {exc}") from None
    codec = _codec(request, settings)
    try:
        out = await (codec.encode if operation == "encode" else codec.decode)(list(payloads.payloads))
    except Exception as exc:  # a tampered payload or a key the ring does not hold
        raise BadInput(f"the payloads could not be {operation}d: {type(exc).__name__}") from None
    return Response(json_format.MessageToJson(Payloads(payloads=out)), media_type="application/json")
