"""One framed message through the MLLP door: validate, make durable on the bus, acknowledge."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import structlog

from mm_bronze import formats
from mm_bronze.bus import Bus
from mm_bronze.errors import BusUnavailable, InvalidPayload, StorageUnavailable
from mm_bronze.ingest.mllp.ack import (
    AckError,
    ErrorCode,
    Outcome,
    build_ack,
    classify,
    locate,
    segment_sequence,
    wanted,
)
from mm_bronze.ingest.mllp.framing import FrameTooLarge
from mm_bronze.ingest.mllp.header import Hl7Header, parse_header
from mm_bronze.ingest.submission_ids import new_submission_id
from mm_bronze.metrics import DoorMetrics
from mm_bronze.metrics.door import ACCEPTED, REJECTED, TOO_LARGE, UNAVAILABLE
from mm_bronze.models import IngestEvent, encode_event
from mm_bronze.storage import ObjectStore, StagedBlob

log = structlog.get_logger(__name__)
_MSH_START = re.compile(rb"(?:^|[\r\n])MSH")

RESEND = "the message could not be made durable now; resend it"
FAILED = "an internal error: resend the message"
HL7 = "hl7/text"  # the format label of every MLLP message


@dataclass(frozen=True)
class Peer:
    """The other end of an MLLP connection."""

    address: str
    port: int
    certificate: str | None = None  # SHA-256 of a verified TLS client certificate


class MessageReceiver:
    """Turns each MLLP message into an ``IngestEvent`` on ``topic`` and returns its ACK.

    The ACK is ``AA`` (``CA`` in enhanced mode) only once the event is durable on the bus;
    ``AE`` when the bus or staging storage is unavailable (nothing was kept; the sender
    resends); ``AR`` when the message is invalid. Returns None when the sender asked for
    no acknowledgement of that outcome (MSH-15).
    """

    def __init__(
        self,
        *,
        bus: Bus,
        topic: str,
        staging: ObjectStore,
        inline_limit: int,
        metrics: DoorMetrics,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._staging = staging
        self._inline_limit = inline_limit
        self._metrics = metrics

    async def receive(self, message: bytes, peer: Peer) -> bytes | None:
        started = time.perf_counter()
        received_at = dt.datetime.now(dt.UTC)
        submission = new_submission_id()
        header = parse_header(message)
        described = header.describe()
        # The ACK's own control id (MSH-10) is the submission's: the ACK names what was kept
        # (the first 20 hexadecimal digits of its UUID).
        ack_id = submission.replace("-", "")[:20].upper().encode()
        try:
            metadata = _validate(message, header)
        except InvalidPayload as exc:
            log.warning(
                "mllp message rejected",
                reason=exc.reason,
                location=exc.location,
                **_context(submission, peer, described),
            )
            error = _located(exc, message)
            self._metrics.answered(HL7, REJECTED, started)
            return _answer(header, Outcome.REJECTED, error, received_at, ack_id)
        except Exception as exc:  # a defect of the door: answered, the connection kept
            error = self._failed(exc, submission, peer, described, started)
            return _answer(header, Outcome.ERROR, error, received_at, ack_id)
        sha256 = hashlib.sha256(message).hexdigest()
        staged: StagedBlob | None = None
        try:
            if len(message) > self._inline_limit:
                key = f"mllp/{received_at:%Y-%m-%d}/{submission}"
                staged = await StagedBlob.create(self._staging, key)
                await staged.write(message)
                await staged.commit()
            event = IngestEvent(
                uuid=submission,
                source="mllp",
                format="hl7",
                content_type="text",
                version=header.version_label,
                subtype=header.subtype,
                sha256=sha256,
                size=len(message),
                received_at=received_at,
                client=peer.certificate,
                payload=None if staged else message,
                staged_path=staged.url if staged else None,
                source_metadata={
                    "remote_addr": peer.address,
                    "remote_port": peer.port,
                    "tls_client_certificate": peer.certificate,
                    **described,
                    "format_metadata": metadata,
                },
            )
            await self._bus.publish(self._topic, sha256.encode(), encode_event(event))
        except (BusUnavailable, StorageUnavailable) as exc:
            if staged is not None:
                await staged.abort()
            log.warning(
                "mllp message not accepted now",
                error=str(exc),
                **_context(submission, peer, described),
            )
            error = AckError(RESEND, code=ErrorCode.INTERNAL)
            self._metrics.answered(HL7, UNAVAILABLE, started)
            return _answer(header, Outcome.ERROR, error, received_at, ack_id)
        except Exception as exc:  # a defect of the door: answered, the connection kept
            if staged is not None:
                await staged.abort()
            error = self._failed(exc, submission, peer, described, started)
            return _answer(header, Outcome.ERROR, error, received_at, ack_id)
        except BaseException:  # cancelled: the door is shutting down
            if staged is not None:
                await staged.abort()
            raise
        # Per message, at debug as the HTTP door's "submission accepted": at info every
        # message would pay a rendered log line (a tenth of one connection's rate).
        if log.is_enabled_for(logging.DEBUG):  # its context is not built for nothing
            log.debug(
                "mllp message accepted",
                size=len(message),
                staged=staged is not None,
                **_context(submission, peer, described),
            )
        self._metrics.answered(HL7, ACCEPTED, started, len(message))
        return _answer(header, Outcome.ACCEPTED, None, received_at, ack_id)

    def _failed(
        self,
        exc: Exception,
        submission: str,
        peer: Peer,
        described: dict[str, str | None],
        started: float,
    ) -> AckError:
        """Note an unexpected failure and say what the AE tells the sender: resend, rather
        than a closed connection and no ACK, which would have it resend all the same."""
        log.error(
            "mllp message failed",
            error=type(exc).__name__,  # the type only: a message could quote the payload
            **_context(submission, peer, described),
        )
        self._metrics.answered(HL7, UNAVAILABLE, started)
        return AckError(FAILED, code=ErrorCode.INTERNAL)

    def oversized(self, exc: FrameTooLarge, peer: Peer) -> bytes | None:
        """The ACK for a frame that was discarded because it crossed the size limit."""
        header = parse_header(exc.head)
        reason = f"message of {exc.size} bytes exceeds the limit of {exc.limit} bytes"
        described = header.describe()
        log.warning(
            "mllp message rejected",
            reason=reason,
            peer=peer.address,
            control_id=described["control_id"],
            sender=described["sending_application"],
        )
        error = AckError(reason, code=ErrorCode.INTERNAL)
        self._metrics.answered(HL7, TOO_LARGE, time.perf_counter())
        return _answer(header, Outcome.REJECTED, error, dt.datetime.now(dt.UTC))


def _validate(message: bytes, header: Hl7Header) -> dict[str, Any]:
    validator = formats.validator_for("hl7", "text")
    validator.feed(message)
    metadata = validator.finish()
    if header.problem is not None:
        problem = header.problem
        where = f"{problem.segment}-{problem.field}" if problem.field else problem.segment
        raise InvalidPayload(problem.reason, location=where)
    return metadata


def _located(exc: InvalidPayload, message: bytes) -> AckError:
    """The ERR details of a validation failure: segment, occurrence and field at fault."""
    # Validators that report located issues name the field in ``expression`` (``PID-3``).
    issues = getattr(exc, "issues", None) or []
    expression = getattr(issues[0], "expression", None) if issues else None
    segment, field = locate(exc.reason, expression or exc.location)
    sequence = segment_sequence(message, exc.location, segment) if segment else 1
    reason = exc.reason
    if exc.location and exc.location.startswith("message ") and _several_messages(message):
        # ERR-2 counts segments within a message, and a batch holds several: say which.
        reason = f"{exc.location}: {reason}"
    return AckError(
        reason, segment=segment, sequence=sequence, field=field, code=classify(exc.reason)
    )


def _several_messages(frame: bytes) -> bool:
    """``frame`` holds more than one MSH segment (a batch, or messages one after another)."""
    found = _MSH_START.finditer(frame)
    return next(found, None) is not None and next(found, None) is not None


def _answer(
    header: Hl7Header,
    outcome: Outcome,
    error: AckError | None,
    now: dt.datetime,
    control_id: bytes | None = None,
) -> bytes | None:
    if not wanted(header, outcome):
        return None
    return build_ack(header, outcome, error, now=now, control_id=control_id)


def _context(
    submission: str, peer: Peer, described: dict[str, str | None]
) -> dict[str, str | None]:
    """What a log line says about a message: identifiers only, never content."""
    return {
        "uuid": submission,
        "peer": peer.address,
        "control_id": described["control_id"],
        "sender": described["sending_application"],
    }
