"""Integration events to a Redis stream, for consumers that scale out.

Each event is one entry whose stream id is `<position>-<sequence>`: the
ledger position is the resume point. A consumer reads with XREAD from the
last id it handled (or with a consumer group, XREADGROUP, to share the work);
the publisher itself resumes from the stream's last id, so after a crash or
on another process it neither skips nor repeats an entry: Redis refuses an
id not above the last one. The stream is trimmed to about `length_max`
entries (older events remain readable through GET /v1/events).

Fields: `id`, `type`, `version`, `position`, `sequence` and `event` (the
whole document as JSON, as webhooks and the events API give it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson
import redis
from redis.exceptions import ResponseError

from projections.integration_event_reads import START, EventKey, IntegrationEvent

# How long one Redis call may take before the pass gives up and retries.
REDIS_TIMEOUT_S: Final[float] = 5.0


def stream_id(key: EventKey) -> str:
    return f"{key.position}-{key.ordinal}"


def parse_stream_id(text: str | bytes) -> EventKey:
    decoded = text.decode() if isinstance(text, bytes) else text
    position, _, ordinal = decoded.partition("-")
    return EventKey(int(position), int(ordinal or 0))


class RedisStreamPublisher:
    def __init__(self, redis_url: str, key: str, length_max: int) -> None:
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self.key = key
        self._length_max = length_max

    def last_published(self) -> EventKey:
        """The newest id ever added (trimmed entries count), START for none."""
        try:
            info: dict[str, Any] = self._client.xinfo_stream(self.key)
        except ResponseError:
            # No such stream yet.
            return START
        return parse_stream_id(info["last-generated-id"])

    def publish(self, events: Sequence[IntegrationEvent]) -> None:
        """Add the events, in order, after the last published (the caller
        read them after `last_published`)."""
        pipeline = self._client.pipeline(transaction=False)
        for event in events:
            pipeline.xadd(
                self.key,
                {
                    "id": str(event.event_id),
                    "type": event.type,
                    "version": event.version,
                    "position": event.position,
                    "sequence": event.ordinal,
                    "event": orjson.dumps(event.document()),
                },
                id=stream_id(event.key),
                maxlen=self._length_max,
                approximate=True,
            )
        pipeline.execute()

    def close(self) -> None:
        self._client.close()
