"""Live closure progress through Redis pub/sub.

After every recorded change of a closure, the process that recorded it
publishes `{"closure_id", "phase", "version"}` on the closure's channel; the
server-sent-events route (which may run in another process) listens there
and sends the closure's progress as soon as it moves. Without REDIS_URL the
route polls the closure instead. Publishing is best effort: a Redis outage
is logged and the stream falls back to its poll, it never fails a step.
"""

from __future__ import annotations

import json
from typing import Final

import redis
import structlog
from redis.exceptions import RedisError

from domain.closure import Closure

log = structlog.get_logger(__name__)

CHANNEL_PREFIX_DEFAULT: Final[str] = "ledger:"
# A publish must never hold a closure step up for long.
PUBLISH_TIMEOUT_S: Final[float] = 0.5


def closure_channel(prefix: str, closure_id: object) -> str:
    return f"{prefix}closure:{closure_id}"


class RedisClosureProgress:
    def __init__(self, redis_url: str, prefix: str = CHANNEL_PREFIX_DEFAULT) -> None:
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=PUBLISH_TIMEOUT_S, socket_connect_timeout=PUBLISH_TIMEOUT_S
        )
        self._prefix = prefix

    def closure_changed(self, closure: Closure) -> None:
        message = json.dumps(
            {
                "closure_id": str(closure.id),
                "phase": closure.phase.value,
                "version": closure.version,
            }
        )
        try:
            self._client.publish(closure_channel(self._prefix, closure.id), message)
        except RedisError as error:
            log.warning(
                "closure_progress_not_published", closure_id=str(closure.id), error=str(error)
            )

    def close(self) -> None:
        self._client.close()
