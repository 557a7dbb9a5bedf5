"""What the gateway's readers of a topic's past share: short-lived consumers without a group (a
consumer kept open would keep fetching), at most `max_concurrent` reads at once (reconnect
storms, bursts of clicks), each bounded by `timeout_s`, and one error when Kafka does not answer.

    class Reader(TopicReader):
        async def read(self, ...):
            return await self.bounded(f"... of {self.topic!r}", lambda: self._read(...))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from dinostream.core.errors import BrokerError

T = TypeVar("T")


class TopicReader:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        timeout_s: float = 15.0,
        max_concurrent: int = 4,
        max_fetch_bytes: int = 0,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self.security = dict(security or {})  # `client_security(kafka)`: TLS/SASL of its consumers
        self._max_fetch_bytes = max_fetch_bytes
        self._gate = asyncio.Semaphore(max_concurrent)

    def consumer(self, client_id: str) -> AIOKafkaConsumer:
        """A consumer without a group that starts from the earliest offset kept; the caller starts and stops it."""
        extra = {"max_partition_fetch_bytes": self._max_fetch_bytes} if self._max_fetch_bytes else {}
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=client_id,
            **extra,
            **self.security,
        )

    async def bounded(self, what: str, read: Callable[[], Awaitable[T]]) -> T:
        """`read()` once a slot is free, within the timeout; BrokerError "cannot read {what} back
        from {bootstrap}: ..." when Kafka does not answer."""
        async with self._gate:
            try:
                return await asyncio.wait_for(read(), self.timeout_s)
            except (TimeoutError, KafkaError, OSError) as e:
                raise BrokerError(f"cannot read {what} back from {self.bootstrap}: {type(e).__name__}: {e}") from None
