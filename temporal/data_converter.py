"""The data converter every Keel client, worker and replayer uses: pydantic's, with one cache.

Temporal's default JSON converter rebuilds dataclasses field by field and reads their type hints
again for every value: decoding a packed context of eight passages took ~0.9 ms, and a query
decodes ten such payloads between the workflow and its activities. pydantic's compiled
validators take ~20 µs, once a `TypeAdapter` is built for the type, and building one takes
~3 ms. temporalio's pydantic converter caches adapters per payload-converter instance, but the
worker builds a new data converter (hence payload converter) for every workflow activation, so
inside a workflow every payload paid the 3 ms again; the cache here is the process's. The JSON is the same as the
default converter's, so histories written by either decode with this one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from keel.config import Settings


@functools.lru_cache(maxsize=1024)
def type_adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


class JsonConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = Any if type_hint is None else type_hint
        try:
            adapter = type_adapter(hint)
        except TypeError:  # an unhashable hint cannot be cached
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data)


class PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = JsonConverter()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def data_converter(settings: Settings) -> DataConverter:
    """Keel's converter with the payload codec (unless `encrypt_payloads` is off): what every
    client, worker and replayer of this deployment uses."""
    if not settings.encrypt_payloads:
        return DATA_CONVERTER
    from stores import redis as redis_store
    from stores.data_keys import TenantKeys
    from temporal.codec import EncryptionCodec, load_key_ring

    ring = load_key_ring(settings)
    keys = TenantKeys(lambda: redis_store.connect(settings), ring)  # Redis only once a tenant's payload comes
    return dataclasses.replace(
        DATA_CONVERTER,
        payload_codec=EncryptionCodec(ring, refuse_plain=settings.codec_refuse_plain, tenant_keys=keys),
        # A failure's message and stack trace go into a payload the codec seals: a provider's
        # error body or a traceback naming a tenant's text is not stored readable.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
