"""Facade for the queue record codec: the compiled hotpath._queue, or its pure-Python twin.

The compiled module is used unless MTA_NO_EXTENSIONS=1 is set or it was not built; ACCELERATED
says which one is in use. Both follow hotpath/_queue_py.py, which documents the record layouts.
"""

from hotpath import NO_EXTENSIONS

if not NO_EXTENSIONS:
    try:
        from hotpath._queue import (
            QUEUE_ID_LENGTH,
            RecordError,
            decode_envelope,
            decode_recipient,
            decode_recipients,
            encode_envelope,
            encode_recipient,
            encode_recipients,
            format_queue_id,
            pack_rcpt_key,
            pack_time_key,
            parse_queue_id,
            unpack_rcpt_key,
            unpack_time_key,
        )

        ACCELERATED = True
    except ImportError:
        NO_EXTENSIONS = True
if NO_EXTENSIONS:
    from hotpath._queue_py import (
        QUEUE_ID_LENGTH,
        RecordError,
        decode_envelope,
        decode_recipient,
        decode_recipients,
        encode_envelope,
        encode_recipient,
        encode_recipients,
        format_queue_id,
        pack_rcpt_key,
        pack_time_key,
        parse_queue_id,
        unpack_rcpt_key,
        unpack_time_key,
    )

    ACCELERATED = False

from hotpath._queue_py import EnvelopeFields, IndexedRecipient, RecipientFields

__all__ = [
    "ACCELERATED",
    "QUEUE_ID_LENGTH",
    "EnvelopeFields",
    "IndexedRecipient",
    "RecipientFields",
    "RecordError",
    "decode_envelope",
    "decode_recipient",
    "decode_recipients",
    "encode_envelope",
    "encode_recipient",
    "encode_recipients",
    "format_queue_id",
    "pack_rcpt_key",
    "pack_time_key",
    "parse_queue_id",
    "unpack_rcpt_key",
    "unpack_time_key",
]
