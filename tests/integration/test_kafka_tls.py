"""Every Kafka client of dinostream speaks TLS to a cluster that requires it (issue 20): the admin
client that creates the topics, the producers, a topic follower and the Faust worker, with the CA from
`kafka.ssl_cafile`. The broker is Tansu (whose own TLS listener this build cannot start: `--cert` and
`--key` refuse each other) behind a TLS-terminating proxy on loopback that Tansu advertises as its
address, so every connection a client opens — bootstrap and the advertised broker alike — is TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from dinostream.analytics.worker import WorkerStats, build_app
from dinostream.core.embedded_broker import _broker_binary, free_port
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import client_security, ensure_topics, make_producer
from dinostream.core.records import Event
from dinostream.core.settings import AnalyticsSettings, KafkaSettings
from tests.records import shots, unique_kafka
from tests.security.gateway import self_signed_certificate
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def tls_kafka(directory: Path) -> AsyncIterator[tuple[str, Path, list[int]]]:
    """Tansu on a private port, advertised as a TLS proxy's address. Yields (bootstrap, CA file,
    a list that counts the TLS handshakes the proxy completed)."""
    certfile, keyfile = self_signed_certificate(directory)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certfile, keyfile)
    inner, outer = free_port(), free_port()
    handshakes: list[int] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshakes.append(1)  # the server side of the handshake is done when this runs
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", inner)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    proxy = await asyncio.start_server(relay, "127.0.0.1", outer, ssl=server_ctx)
    log = (directory / "tansu.log").open("wb")
    proc = subprocess.Popen(
        [
            _broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{inner}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{outer}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", inner)
            except OSError:
                return False
            w.close()
            return True

        await wait_for(listening, 20, "Tansu listening")
        yield f"127.0.0.1:{outer}", certfile, handshakes
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        proxy.close()
        await proxy.wait_closed()


async def test_every_client_speaks_tls_to_a_cluster_that_requires_it(tmp_path: Path) -> None:
    async with tls_kafka(tmp_path) as (bootstrap, cafile, handshakes):
        plain = unique_kafka(bootstrap=bootstrap, partitions=2, idempotent=False, connect_timeout_s=3)
        # Negative first: the proxy answers only TLS, so a plaintext client cannot even bootstrap.
        with pytest.raises(BrokerError, match="cannot reach Kafka"):
            await ensure_topics(bootstrap, plain)
        # A CA that did not sign the broker's certificate is refused too.
        (tmp_path / "other").mkdir()
        other_ca, _ = self_signed_certificate(tmp_path / "other")
        wrong = plain.model_copy(update={"security_protocol": "SSL", "ssl_cafile": other_ca})
        with pytest.raises(BrokerError):
            await ensure_topics(bootstrap, wrong)

        kafka: KafkaSettings = plain.model_copy(update={"security_protocol": "SSL", "ssl_cafile": cafile})
        before = len(handshakes)
        await ensure_topics(bootstrap, kafka)  # the admin client
        assert len(handshakes) > before

        stats = WorkerStats()
        settings = AnalyticsSettings(app_id=f"tls-{uuid.uuid4().hex[:8]}")
        app = build_app(bootstrap, kafka, settings, stats=stats, datadir=tmp_path / "faust")
        producer = make_producer(bootstrap, kafka, embedded=True)
        consumer = AIOKafkaConsumer(
            kafka.events_topic,
            bootstrap_servers=bootstrap,
            group_id=f"g-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            **client_security(kafka),
        )
        await app.start()  # Faust (its consumer, producer and the watchlist follower) over TLS
        await producer.start()
        await consumer.start()
        try:
            for r in shots("cam-tls", [6, 6], 3):
                await producer.send_and_wait(kafka.embeddings_topic, r.encode(), key=r.key)
            events: list[Event] = []

            async def a_cut_and_every_record() -> bool:
                batch = await consumer.getmany(timeout_ms=500)
                events.extend(Event.decode(m.value) for ms in batch.values() for m in ms)
                # The cut's event leaves after its look-ahead, before the worker has read the last
                # records: wait for both rather than read the count at the event.
                return any(e.type == "scene_change" for e in events) and stats.records == 12

            await wait_for(
                a_cut_and_every_record, 90, "the worker's scene change read back over TLS, all 12 records read"
            )
            assert stats.failure is None
        finally:
            await consumer.stop()
            await producer.stop()
            await app.stop()
