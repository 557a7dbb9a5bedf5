"""Kafka TLS/SASL settings: checked when read, and the same security options reach every Kafka
client the code creates (producer, admin, consumers, the gateway's replay reader) and the Faust app."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from dinostream.analytics.worker import broker_credentials, build_app
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import TopicFollower, client_security, ensure_topics, make_producer
from dinostream.core.settings import AnalyticsSettings, KafkaSettings
from dinostream.dashboard.live_feed import LiveFeed
from dinostream.dashboard.live_hub import LiveHub


def self_signed(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def sasl_ssl(cafile: Path) -> KafkaSettings:
    return KafkaSettings.model_validate(
        {
            "bootstrap": "kafka:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "dinostream",
            "sasl_password": "s3cret",
            "ssl_cafile": str(cafile),
        }
    )


def test_bad_security_settings_are_named() -> None:
    with pytest.raises(ValidationError, match="needs kafka.sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="SASL_SSL"):
        KafkaSettings(sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p")
    with pytest.raises(ValidationError, match="go together"):
        KafkaSettings(security_protocol="SSL", ssl_certfile=Path("client.pem"))


async def test_every_client_gets_the_same_security(tmp_path: Path) -> None:
    kafka = sasl_ssl(self_signed(tmp_path))
    options = client_security(kafka)
    assert options["security_protocol"] == "SASL_SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].get_ca_certs()[0]["subject"] == ((("commonName", "kafka.test"),),)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "dinostream",
        "s3cret",
    )
    feed = LiveFeed(LiveHub(4), "kafka:9093", kafka)
    clients = {
        "producer": make_producer("kafka:9093", kafka, embedded=False).client,
        "follower": TopicFollower(["t"], "kafka:9093", kafka, "c", lambda b: None)._consumer._client,
        "live feed": feed._consumer._client,
    }
    for name, client in clients.items():
        assert (client._security_protocol, client._sasl_mechanism, client._sasl_plain_password) == (
            "SASL_SSL",
            "SCRAM-SHA-512",
            "s3cret",
        ), name
        assert client._ssl_context is not None, name
    assert feed.event_log.security["sasl_plain_username"] == "dinostream"
    creds = broker_credentials(kafka)
    assert creds is not None and creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    app = build_app("kafka:9093", kafka, AnalyticsSettings(), processors=lambda a: [])
    assert app.conf.broker_credentials is not None and app.conf.broker_credentials.username == "dinostream"


async def test_an_unreadable_ca_stops_the_admin_client_with_its_name(tmp_path: Path) -> None:
    kafka = sasl_ssl(tmp_path / "missing-ca.pem")
    with pytest.raises(BrokerError, match="missing-ca.pem"):
        await ensure_topics("kafka:9093", kafka)
