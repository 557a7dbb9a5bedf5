"""The gateway's HTTP surface as the service assembles it (`create_app` with the streams, analytics,
watchlist and WHIP routes), with real parts behind it, for the attacks of tests/security.

Real: the StreamManager with its registry on disk and the URL policy, WHIP sessions (aiortc), the
watchlist, the live hub, the guard. The model stage only collects frames; the image embedder is
tests.pictures.ColourEmbedder.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from PIL import Image

from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.core.errors import DinostreamError
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import AnalyticsSettings, HttpSettings, IndexSettings, IngestSettings, WhipSettings
from dinostream.dashboard.analytics_control import AnalyticsControl
from dinostream.dashboard.app import create_app
from dinostream.dashboard.auth import hash_token
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.dashboard.watchlist_api import watchlist_router
from dinostream.dashboard.whip_api import whip_router
from dinostream.demo_video import make_video
from dinostream.ingest.source import Frame
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_registry import REGISTRY_FILE, StreamRegistry
from dinostream.ingest.whip_sessions import WhipSessions
from dinostream.sinks.asset_store import AssetStore
from dinostream.sinks.index_factory import open_index
from tests.pictures import ColourEmbedder, colour_features, picture

RED = (230, 20, 20)

TOKENS = {"viewer": "viewer-token-0123456789", "operator": "operator-token-0123456789"}
ADMIN_TOKEN = "admin-api-token-0123456789"  # given as http.api_token: the admin alias


def token_settings(**fields: Any) -> HttpSettings:
    """HttpSettings with a viewer and an operator token (hashed) and `api_token` as the admin."""
    tokens = [{"name": f"{role}-1", "role": role, "sha256": hash_token(t)} for role, t in TOKENS.items()]
    return HttpSettings(tokens=tokens, api_token=ADMIN_TOKEN, **fields)


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN if role == 'admin' else TOKENS[role]}"}


def error_of(r: httpx.Response, status: int, code: str) -> str:
    """The one-line message of an error answer in the one error shape."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert message and "\n" not in message
    return message


def colour_frame(stream: str, seq: int, colour: tuple[int, int, int] | np.ndarray) -> FrameEmbedding:
    """A frame record with the colour features (tests.pictures) of a plain picture or an RGB array."""
    rgb = colour if isinstance(colour, np.ndarray) else np.asarray(Image.new("RGB", (64, 48), colour))
    vec = colour_features(rgb)
    return FrameEmbedding(
        stream=stream,
        seq=seq,
        pts=seq * 0.5,
        ts=1_700_000_000.0 + seq,
        model="test",
        untrained=False,
        cls=vec,
        pooled=vec,
        patches=np.tile(vec, (2, 2, 1)),
        thumbnail=picture(tuple(int(c) for c in rgb[0, 0])),
    )


class CollectingStage:
    """The ModelStage contract: remembers the frames it is handed."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def check_resolution(self, resolution: int | None) -> None:
        if resolution is not None and resolution > 512:
            raise DinostreamError(f"resolution {resolution} is too large")

    async def resize_target(self, spec: Any, resolution: int | None = None) -> tuple[int, int]:
        return (64, 48)

    async def put(self, frame: Frame) -> None:
        self.frames.append(frame)


class Gateway:
    """The app and what is behind it; `async with Gateway(...) as gw:` starts and stops the manager."""

    def __init__(
        self,
        tmp: Path,
        http: HttpSettings,
        *,
        ingest: IngestSettings | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.media = tmp / "media"
        self.media.mkdir(exist_ok=True)
        if not (self.media / "clip.mp4").exists():
            make_video(self.media / "clip.mp4", shots=2, shot_s=1.0, fps=10, size=(64, 48))
        (tmp / "outside.mp4").write_bytes(b"secret")
        self.ingest = ingest or IngestSettings(media_roots=[self.media], open_timeout_s=1.0, read_timeout_s=1.0)
        self.stage = CollectingStage()
        self.manager = StreamManager(self.stage, self.ingest, StreamRegistry(tmp / "data" / REGISTRY_FILE))
        self.hub = LiveHub(http.ws_queue_size)
        self.hub.publish_frame("cam1", 1, 0.5, picture(RED), model="test", untrained=False)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.analytics = AnalyticsControl(AnalyticsSettings(), self._send_control, self.manager)
        self.embed = ColourEmbedder()
        self.index = open_index(IndexSettings(), tmp / "data", 12)  # a real one: embedded Qdrant Edge
        self.index.upsert_frames([colour_frame("cam1", 1, RED)])
        self.watchlist = Watchlist()
        self.published: list[tuple[str, Exemplar | None]] = []
        self.whip = WhipSessions(WhipSettings(max_offer_bytes=4096), self.ingest, (64, 48))
        self.app: FastAPI = create_app(
            settings=http,
            hub=self.hub,
            index=self.index,
            embed_images=self.embed,
            health=health or (lambda: {"streams": self.manager.healths()}),
            analytics=self.analytics,
            manager=self.manager,
            assets=AssetStore(tmp / "data" / "assets", max_bytes=http.max_asset_bytes, retention_days=1.0),
        )
        self.app.include_router(
            watchlist_router(
                self.watchlist,
                self._publish,
                RecentFrames(),
                self._embed_record,
                self.analytics.reid,
                http.max_upload_bytes,
            )
        )
        self.app.include_router(whip_router(self.whip))

    async def _send_control(self, stream: str, processor: str, changes: dict[str, Any]) -> None:
        self.sent.append((stream, processor, changes))

    async def _embed_record(self, rgb: np.ndarray) -> FrameEmbedding:
        return colour_frame("query", 0, rgb)

    async def _publish(self, exemplar_id: str, exemplar: Exemplar | None) -> None:
        self.published.append((exemplar_id, exemplar))

    async def __aenter__(self) -> Gateway:
        await self.manager.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.manager.stop()
        await self.whip.close_all()
        self.index.close()

    def client(self, headers: dict[str, str] | None = None, host: str = "localhost") -> httpx.AsyncClient:
        """An in-process client (the app over httpx's ASGI transport) sending `Host: host`."""
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", headers=headers, timeout=30)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile
