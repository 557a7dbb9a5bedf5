"""Typed settings for every stage, defined once.

The CLI, the HTTP API and the docs all read their defaults from these models; components
receive the sub-model they need through their constructor and never read globals.

    >>> s = Settings(sources=["demo.mp4"])
    >>> s.ingest.sample_fps
    2.0

A stream's own settings (`StreamOverrides`: the settings file's `streams.<id>`, then what the
stream registry keeps) layer over these; `stream_settings` gives the result, validated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

DEFAULT_MODEL = "facebook/dinov3-vits16-pretrain-lvd1689m"


M = TypeVar("M", bound=BaseModel)


def describe_validation_error(e: ValidationError) -> str:
    """One line naming every bad field: `ingest.sample_fps: Input should be greater than 0; ...`."""
    return "; ".join(_error_line(err) for err in e.errors())


def _error_line(err: Any) -> str:
    where = ".".join(map(str, err["loc"]))
    return f"{where}: {_error_msg(err)}" if where else _error_msg(err)


def _error_msg(err: Any) -> str:
    # A validator's own message already says what is wrong (and often which field): no "Value error, ".
    return str(err["ctx"]["error"]) if err["type"] == "value_error" and "error" in err.get("ctx", {}) else err["msg"]


def merge_settings(current: M, changes: dict[str, Any]) -> M:
    """`current` with `changes` applied, validated like the defaults; ValueError names bad fields."""
    try:
        return type(current).model_validate({**current.model_dump(), **changes})
    except ValidationError as e:
        raise ValueError(describe_validation_error(e)) from None


ENV_PREFIX = "DINOSTREAM_"


def settings_from_env(environ: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """Nested settings from environment variables, for containers and Kubernetes: section and
    field joined by a double underscore. Values are text that the models convert ("4", "true");
    a value starting with [ or { is JSON (lists, objects), and "null" is None. Validate the result
    with `Settings.model_validate`, which names a bad field.

    >>> settings_from_env({"DINOSTREAM_KAFKA__BOOTSTRAP": "kafka:9092", "DINOSTREAM_SOURCES": '["a.mp4"]'})
    {'kafka': {'bootstrap': 'kafka:9092'}, 'sources': ['a.mp4']}
    """
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix) or len(name) == len(prefix):
            continue
        path = [p.lower() for p in name[len(prefix) :].split("__")]
        if not all(path):
            raise ValueError(f"environment variable {name}: empty name part (use one '__' between section and field)")
        value: Any = raw
        if raw.strip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except ValueError:
                raise ValueError(f"environment variable {name}: not valid JSON: {raw[:80]!r}") from None
        elif raw == "null":
            value = None
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"environment variable {name}: {part} is set both as a value and as a section")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise ValueError(f"environment variable {name}: {path[-1]} is set both as a value and as a section")
        node[path[-1]] = value
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Strict):
    """How sources are opened, decoded and sampled."""

    sample_fps: float = Field(2.0, gt=0, le=120, description="Frames per second sampled by presentation time.")
    queue_size: int = Field(32, ge=1, description="Bound of each source's frame queue.")
    open_timeout_s: float = Field(10.0, gt=0, description="Give up opening a source after this long.")
    read_timeout_s: float = Field(10.0, gt=0, description="Give up when a source sends nothing for this long.")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    realtime: bool = Field(
        False,
        description="Play files at their native rate (live-like, drops when behind) instead of as fast as possible.",
    )
    # Supervision (ingest/stream_supervisor.py): how a broken live stream comes back by itself.
    stall_timeout_s: float = Field(
        15.0, gt=0, description="A live stream that sends no frame for this long is closed and reopened (stalled)."
    )
    backoff_initial_s: float = Field(1.0, gt=0, description="First wait before reconnecting a failed live stream.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnects.")
    backoff_multiplier: float = Field(2.0, ge=1, description="Growth of the wait after each failed reconnect.")
    backoff_jitter: Literal["full", "decorrelated"] = Field(
        "full",
        description="Randomised waits so cameras that dropped together do not reconnect together: 'full' waits "
        "uniform(0, min(max, initial * multiplier^n)); 'decorrelated' uniform(initial, last * multiplier), capped "
        "(it grows exponentially only with a multiplier above 2, e.g. 3).",
    )
    backoff_reset_s: float = Field(
        60.0, ge=0, description="A stream live this long again starts its next backoff from backoff_initial_s."
    )
    max_reconnects: int | None = Field(
        None,
        ge=0,
        description="Reconnects in a row (without a backoff_reset_s live period) before a live stream is failed; "
        "None retries forever.",
    )
    media_roots: list[Path] = Field(
        default_factory=list,
        description="Directories that files added through the HTTP API must lie under (symlinks resolved); empty: "
        "the API accepts no files.",
    )
    allow_loopback: bool = Field(
        False, description="Let the HTTP API add sources on loopback hosts (127.0.0.0/8, ::1, 0.0.0.0)."
    )
    allow_private_networks: bool = Field(
        False,
        description="Let the HTTP API add sources on private hosts (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).",
    )
    allowed_devices: list[str] = Field(
        default_factory=list,
        description="Camera devices (/dev/videoN) that sources added through the HTTP API may open; empty: none "
        "(a device named on the command line is always allowed).",
    )
    decode: Literal["auto", "all", "keyframes"] = Field(
        "auto",
        description="'keyframes': decode only keyframes; 'all': every frame; 'auto': keyframes when the stream's "
        "keyframe interval is no longer than the sampling interval, else all.",
    )
    decode_threads: int | None = Field(
        None,
        ge=0,
        le=64,
        description="FFmpeg threads of each stream's decoder. None: 1 up to 1920x1080 (one core decodes 1080p "
        "at 70+ fps), FFmpeg's choice above (a 4K stream needs more than a core to keep up). 1: the stream's own "
        "decode thread does it all, the least CPU per frame, while a node's many streams keep every core busy "
        "(FFmpeg's frame threads cost ~0.1 ms more CPU per decoded frame: 90 % more at 320x240, 5 % at 1080p; "
        "bench/decode.py --threads); 0: FFmpeg's choice (a thread per core: about half the wall time for one "
        "large stream, as `dinostream analyze` uses unless this is set).",
    )
    cut_timing: bool = Field(
        True,
        description="Follow a 64x36 grid of luma points over every decoded frame, so each sampled frame carries "
        "where the picture jumped since the previous one and a cut between samples is timed to the frame "
        "(`ingest.jumps`). Costs ~0.1-0.2 ms per decoded frame at 720p-1080p (2-4 % of decoding it) where the "
        "frames between samples are decoded; nothing where only sampled keyframes are. False: cuts are timed "
        "half way between their two samples.",
    )
    hwaccel: str | None = Field(
        None,
        description="Decode on this FFmpeg hardware device type, optionally ':device' ('cuda', 'cuda:1', "
        "'vaapi:/dev/dri/renderD128', 'videotoolbox'); where it cannot (no such device, or no decoder for the "
        "stream's codec), decoding stays in software with a logged warning.",
    )


class ModelSettings(_Strict):
    """The DINOv3 embedding stage."""

    model: str = Field(
        DEFAULT_MODEL,
        description="Local directory, Hugging Face Hub id, Meta .pth file, or 'random:vits16' for seeded random "
        "weights.",
    )
    image_size: int = Field(
        224,
        ge=16,
        description="Resolution preset (224, 448 or 512; any multiple of 16): the side of the square input, or with "
        "aspect 'preserve' the budget of (image_size/16)^2 patches the source's shape is fitted into.",
    )
    aspect: Literal["square", "preserve"] = Field(
        "preserve",
        description="'preserve': each source keeps its aspect ratio (16:9 at 448 is 592x336), neither squashed nor "
        "padded; 'square': every source is resized to image_size x image_size.",
    )
    device: str = Field(
        "auto",
        description="'auto' (CUDA when present), 'cpu', 'cuda:N', or several CUDA devices 'cuda:0,cuda:1' (one model "
        "replica per device; each batch goes to the least busy one).",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Autocast dtype on CUDA ('auto': bf16 where supported, else fp16). The CPU computes fp32."
    )
    compile: bool = Field(
        False, description="torch.compile the device step: one compilation per input size, seconds to minutes each."
    )
    max_batch: int = Field(16, ge=1, description="A micro-batch closes at this many frames ...")
    max_wait_ms: float = Field(50.0, ge=0, description="... or this long after its first frame.")
    queue_size: int = Field(
        16, ge=1, description="Bound of each stream's queue in front of the model; a full queue holds back its source."
    )
    patch_pool: int = Field(1, ge=1, le=16, description="Average-pool the patch grid by this factor (2: 14x14 -> 7x7).")
    patch_pca_dims: int | None = Field(
        None, ge=1, description="Reduce patch vectors to this many PCA dimensions (a PCA fitted on sample frames)."
    )
    patch_pca_file: Path = Field(
        Path("patch_pca.npz"), description="The fitted patch PCA; a relative path is under the data dir."
    )
    thumbnail_size: int = Field(160, ge=16, description="Longest side of the JPEG thumbnail.")
    thumbnail_quality: int = Field(75, ge=10, le=95)
    seed: int = Field(0, description="Seed for 'random:' models.")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"image_size must be a multiple of 16 (DINOv3 patch size), got {v}")
        return v

    @field_validator("patch_pool")
    @classmethod
    def _pool_fits(cls, v: int, info) -> int:  # info: pydantic's ValidationInfo (image_size is validated first)
        size = info.data.get("image_size")
        if size is not None and 16 * v > size:
            raise ValueError(f"patch_pool {v} pools more than the whole {size // 16}-patch side of image_size {size}")
        return v

    @field_validator("device")
    @classmethod
    def _device_list(cls, v: str) -> str:
        parts = [p.strip() for p in v.split(",")]
        if not all(parts):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda:N' or a comma-separated list of them, got {v!r}")
        if len(parts) > 1:
            if any(not p.startswith("cuda") for p in parts):
                raise ValueError(f"a device list holds only CUDA devices ('cuda:0,cuda:1'), got {v!r}")
            if len(set(parts)) != len(parts):
                raise ValueError(f"device list names a device twice: {v!r}")
        return ",".join(parts)

    @property
    def devices(self) -> list[str]:
        """The devices of `device`, one model replica each."""
        return self.device.split(",")


class KafkaSettings(_Strict):
    """The broker and the topics that carry the wire records."""

    bootstrap: str | None = Field(None, description="host:port[,host:port]; None starts the embedded broker.")
    embeddings_topic: str = "dinostream.embeddings"
    previews_topic: str = Field(
        "dinostream.previews",
        description="Each frame's preview (fields, thumbnail and where its whole record is), written beside the "
        "embeddings: what the gateways' live view reads, a few KB a frame instead of the whole record.",
    )
    events_topic: str = "dinostream.events"
    control_topic: str = Field("dinostream.control", description="Run-time per-stream analytics settings.")
    watchlist_topic: str = Field(
        "dinostream.watchlist",
        description="Watchlist exemplars, keyed by exemplar id (compacted; an empty value removes one). Every "
        "analytics worker reads all of it.",
    )
    streams_topic: str = Field(
        "dinostream.streams",
        description="The stream registry of the separate roles: key stream id, value its StreamConfig JSON, an "
        "empty value removes it (compacted). Its partitions are shared out among the ingest nodes.",
    )
    stream_health_topic: str = Field(
        "dinostream.stream-health",
        description="Each stream's health, published every few seconds by the ingest node that runs it, keyed by "
        "stream id (compacted; an empty value: no node runs it now).",
    )
    partitions: int = Field(
        4,
        ge=1,
        description="Partitions of the topics dinostream creates: the most workers, index sinks and ingest nodes "
        "that get work.",
    )
    connect_timeout_s: float = Field(10.0, gt=0)
    session_timeout_s: float = Field(
        10.0,
        ge=2,
        description="Consumer-group session timeout: how fast a dead member's partitions move "
        "(Tansu also holds a group join for half of it).",
    )
    max_message_bytes: int = Field(1_000_000, ge=1024, description="Kafka's default message size limit.")
    idempotent: bool | None = Field(
        None,
        description="Idempotent producer. None: on for an external cluster, off for the embedded broker "
        "(Tansu's memory storage rejects InitProducerId); sinks are idempotent by id either way.",
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replication factor of every topic dinostream or its analytics app creates. None: the "
        "cluster's default.replication.factor (sent as -1, KIP-464).",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics dinostream creates (acks=all writes need this many "
        "replicas). None: the cluster's.",
    )
    embeddings_retention_ms: int | None = Field(
        12 * 3600 * 1000,
        ge=60_000,
        description="retention.ms of the embeddings topic: how long a stopped worker or index sink can catch "
        "up (28-100 GB per camera per day at 2 fps). None: the cluster's (7 days by default).",
    )
    embeddings_retention_bytes: int | None = Field(
        16 * 1024**3,
        ge=1_048_576,
        description="retention.bytes of the embeddings topic, per partition (times partitions and replicas on "
        "disk). None: the cluster's (unbounded by default).",
    )
    embeddings_segment_bytes: int = Field(
        256 * 1024**2,
        ge=1_048_576,
        description="segment.bytes of the embeddings topic: retention deletes whole segments, so smaller ones "
        "keep the disk near the limit.",
    )
    previews_retention_ms: int = Field(
        3600 * 1000,
        ge=60_000,
        description="retention.ms of the previews topic: the live view reads it from its end, so an hour is plenty.",
    )
    worker_session_timeout_s: float | None = Field(
        None,
        ge=2,
        description="Session timeout of the analytics workers' consumer group: CPU-heavy processors and blocking "
        "Qdrant calls share its event loop, so on a real cluster give it Kafka's default, 45 (the shipped "
        "deployments do). None: session_timeout_s (fast hand-over; Tansu holds a join for half of it).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client of the process (and the Faust app) talks to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism; required by the SASL_* protocols."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(
        None, description="From the environment (DINOSTREAM_KAFKA__SASL_PASSWORD, e.g. a Kubernetes Secret)."
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle the brokers' certificates are checked against.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS), with ssl_keyfile.")
    ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_mechanism, kafka.sasl_username "
                "and kafka.sasl_password"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"kafka.sasl_mechanism is set but kafka.security_protocol is {self.security_protocol}: use "
                "SASL_SSL (or SASL_PLAINTEXT)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("kafka.ssl_certfile and kafka.ssl_keyfile go together (a client certificate and its key)")
        return self

    @model_validator(mode="after")
    def _replicas(self) -> KafkaSettings:
        rf, isr = self.replication_factor, self.min_insync_replicas
        if rf is not None and isr is not None and isr > rf:
            raise ValueError(
                f"kafka.min_insync_replicas ({isr}) is more than kafka.replication_factor ({rf}): every acks=all "
                "write would fail"
            )
        return self


class SceneChangeSettings(_Strict):
    """Shot changes (hard cuts and gradual transitions) from global embeddings, with an adaptive
    per-stream threshold and a short look-ahead that rejects flashes, occlusions and camera moves.

    Times are media seconds, so the same settings work at any sampling rate (2 fps or 25 fps).
    """

    window: int = Field(20, ge=2, description="Recent within-shot distances the adaptive threshold is computed from.")
    sensitivity: float = Field(
        4.0, gt=0, description="A change counts when its distance > median + sensitivity * MAD of those distances."
    )
    min_distance: float = Field(
        0.05, ge=0, le=2, description="Absolute floor (cosine distance) below which nothing is a shot change."
    )
    min_shot_s: float = Field(1.0, ge=0, description="Minimum media seconds between two shot changes.")
    gradual_s: float = Field(
        2.0,
        gt=0,
        description="Each frame is also compared with the frame this long before it, so a dissolve or fade "
        "whose every step is small is still caught (as long as the longest dissolve to catch).",
    )
    max_transition_s: float = Field(
        4.0,
        gt=0,
        description="Longest gradual transition; a change still going on after this is camera motion, not a cut.",
    )
    settle_s: float = Field(
        1.2,
        ge=0,
        description="Look-ahead: the new picture must be shown this long (at least two frames) before the event "
        "is sent, so a flash or an object passing by, which goes back to the old picture, is not reported. "
        "Events come about this much after the new picture appears; a shot shown for less joins the next change.",
    )
    same_scene_similarity: float = Field(
        0.9,
        ge=-1,
        le=1.01,
        description="Before and after are the same scene (a fast pan, an object in front) when their patch "
        "grids agree this well at the best shift (mean cosine) and their thumbnails' detail agrees at some shift "
        "too; such changes are not shot changes. High, because plain areas (walls, sky, paper) agree across "
        "different scenes too. Above 1 turns it off.",
    )
    relit_similarity: float = Field(
        0.8,
        ge=-1,
        le=1.01,
        description="Relit, not cut: a change whose settled frame's thumbnail detail matches the old picture's this "
        "well (normalised cross-correlation, at a shift of a few pixels at most) with about as much detail is the "
        "same view under other light (a lamp, a shadow, an exposure step), not a shot change. In the benchmark's "
        "videos lighting changes match at 0.89-0.97 and changes at 0.65 at most. Above 1 turns it off.",
    )
    motion_similarity: float = Field(
        0.6,
        ge=-1,
        le=1.01,
        description="Camera motion: a frame whose thumbnail's detail (grey pixels less their blur) matches the "
        "previous frame's this well (normalised cross-correlation over the overlap) once translated at a quarter "
        "of the view per second or faster is the camera moving; a change made only of such steps and unmoved "
        "ones (a whip pan, a PTZ move) is not a shot change. In the benchmark's videos the two sides of a cut "
        "match at 0.3 at most, the steps of a pan at 0.77 or more. Above 1 turns it off.",
    )


class AnomalySettings(_Strict):
    """Per-stream, position-aware model of normal: each cell's kNN distance to coresets of what that part of
    the view held, and whole-frame (view and global) scores.

    Scores are in units of the calibrated normal level: 1.0 is the `quantile` of the scores of
    held-out warm-up frames, so `threshold` and `adapt_below` mean the same on every stream.
    """

    # Warm-up and calibration
    warmup_frames: int = Field(
        40,
        ge=0,
        description="Frames a stream's model of normal is learned from before anything is scored; 0 waits for "
        "learn() (a user-marked normal period). Fixed when a warm-up starts; a change applies after reset().",
    )
    holdout_fraction: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="Part of the warm-up (short blocks spread over it) scored against a bank built from the rest: "
        "those leave-out scores calibrate the threshold.",
    )
    quantile: float = Field(0.98, gt=0, le=1, description="Quantile of held-out warm-up scores that defines score 1.0.")
    min_distance: float = Field(
        0.02,
        gt=0,
        le=2,
        description="Floor on the calibrated normal distance, so a perfectly static warm-up does not turn "
        "encoding noise into anomalies.",
    )
    # Model of normal
    bank_size: int = Field(
        1024,
        ge=16,
        le=16384,
        description="Patch vectors kept in the memory bank after greedy coreset selection (bounds the per-frame "
        "cost and the saved state: about bank_size x dim bytes).",
    )
    global_bank_size: int = Field(128, ge=4, le=4096, description="Global (CLS + mean-patch) vectors kept.")
    k: int = Field(
        1,
        ge=1,
        le=16,
        description="A patch's score is the mean distance to its k nearest bank vectors. 1 suits a coreset bank: "
        "a compact, rare normal pattern may be covered by a single vector, and k > 1 would score it as unusual.",
    )
    neighbourhood: int = Field(
        1,
        ge=1,
        le=7,
        description="Average each unit patch vector with its n x n neighbours first (PatchCore's local context); "
        "1 keeps single patches, which localises objects of one or two patches best.",
    )
    pool: int = Field(
        1, ge=1, le=8, description="Average-pool the patch grid by this factor (bounds the cost of big grids)."
    )
    use_global: bool = Field(
        True,
        description="Also score the whole frame: its view vector (the centred cells' mean) and its global vector "
        "(whole-frame unusual content that no single patch shows: a covered lens, another scene); the frame score is "
        "the largest of the calibrated scores.",
    )
    projection_dim: int = Field(
        128,
        ge=0,
        description="Cell vectors are kept and compared in a random projection to this many dims (bank_size full "
        "vectors' worth of memory then holds more of them); 0 uses full vectors.",
    )
    seed: int = Field(0, ge=0, description="Seed for the projection and patch subsampling (results are reproducible).")
    # Alarm and lifecycle
    threshold: float = Field(1.3, gt=0, description="A frame is anomalous when its score exceeds this.")
    open_after: int = Field(2, ge=1, description="Consecutive anomalous frames before an event opens.")
    close_after: int = Field(3, ge=1, description="Consecutive normal frames before an open event closes.")
    update_every_s: float = Field(
        1.0,
        ge=0,
        description="An open anomaly is re-sent (status 'update', the current frame's heatmap and box) at most this "
        "often (media seconds); 0: every anomalous frame.",
    )
    cooldown_s: float = Field(
        5.0,
        ge=0,
        description="Media seconds after an event closes before a new one may open at the same place (an anomaly "
        "elsewhere opens at once).",
    )
    box_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The box is the connected region around the heatmap's peak of patches scoring at least this "
        "fraction of the peak (and above the normal level).",
    )
    # Slow adaptation
    adapt: bool = Field(
        True, description="Slowly learn clearly normal frames (slow drift); a sudden lasting change needs learn()."
    )
    adapt_below: float = Field(
        1.0,
        gt=0,
        description="Only frames scoring below this (and below threshold) count as clearly normal: 1.0 is the "
        "calibrated normal level, so only frames as usual as the warm-up's are learned.",
    )
    adapt_every: int = Field(10, ge=1, description="Every n-th clearly normal frame gives patches to the reservoir.")
    adapt_patches: int = Field(16, ge=1, description="Patches (chosen at random) a contributing frame gives.")
    reservoir_size: int = Field(256, ge=1, le=16384, description="Bound of the reservoir of candidate normal patches.")
    adapt_interval: int = Field(200, ge=1, description="Frames between merges of the reservoir into the bank.")
    adapt_guard: int = Field(
        10,
        ge=0,
        description="Frames within this many of an anomalous frame (before or after) are never learned.",
    )

    @field_validator("warmup_frames")
    @classmethod
    def _warmup_holds_out(cls, v: int) -> int:
        if v == 1:
            raise ValueError("warmup_frames must be 0 (learn() only) or at least 2 (one to fit, one to calibrate)")
        return v


class ReidSettings(_Strict):
    """Regions from patch features, tracks within a stream, identities across streams, watchlists."""

    # Regions: foreground against a per-stream background model of patch features.
    fg_threshold: float = Field(
        0.7,
        ge=-1,
        le=1,
        description="A patch is foreground when its cosine similarity to the background is below this.",
    )
    fg_mad_k: float = Field(
        4.0, ge=0, description="... or below the frame's median similarity - k·MAD, when that is lower."
    )
    fg_grow_threshold: float = Field(
        0.9,
        ge=-1,
        le=1,
        description="Foreground grows from those cells into connected cells less similar than this (hysteresis): "
        "a patch of an object that looks like the background does not cut it in two. fg_threshold turns it off.",
    )
    bg_warmup: int = Field(3, ge=1, description="Frames averaged into the background before regions are reported.")
    bg_rate: float = Field(0.05, gt=0, le=1, description="Background adaptation rate of background patches.")
    bg_fg_rate: float = Field(
        0.005, ge=0, le=1, description="Adaptation rate of foreground patches: how fast a stopped object fades in."
    )
    max_fg_fraction: float = Field(
        0.5, gt=0, le=1, description="More foreground than this means the view changed: relearn the background."
    )
    min_region_patches: int = Field(4, ge=1, description="Smallest region, in patches.")
    feature_centering: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Fraction of the frame's mean patch vector removed before regions and exemplars are compared.",
    )
    max_regions: int = Field(16, ge=1, description="Largest regions kept per frame.")
    # Tracks within a stream.
    track_min_similarity: float = Field(
        0.5, ge=-1, le=1, description="A region continues a track only if their embeddings are at least this similar."
    )
    track_min_iou: float = Field(
        0.3, ge=0, le=1, description="... or their boxes overlap at least this much (IoU) and the track was just seen."
    )
    track_max_jump: float = Field(
        0.25, gt=0, description="Either way their boxes overlap or their centres are at most this far (frame units)."
    )
    track_iou_weight: float = Field(1.0, ge=0, description="Weight of box IoU next to embedding similarity.")
    track_ema: float = Field(0.3, gt=0, le=1, description="Weight of the newest region in a track's embedding.")
    min_hits: int = Field(3, ge=1, description="Frames a track needs before it is confirmed.")
    max_misses: int = Field(2, ge=0, description="Frames a track may go unseen before it ends.")
    # Identities across streams.
    link_threshold: float = Field(
        0.7,
        ge=-1,
        le=1,
        description="Similarity (appearance and colours, see colour_weight) a track needs to a gallery track "
        "of another stream to link.",
    )
    link_margin: float = Field(
        0.05, ge=0, le=2, description="... and by which it must beat the best track of any other identity."
    )
    colour_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of a track's colours (each camera's white balance taken out) next to its appearance "
        "in what links compare; 0: appearance alone.",
    )
    link_min_views: int = Field(
        4,
        ge=1,
        description="Full views (not cut by the frame's edge) a track needs before it is searched in the gallery; "
        "a track never seen whole is searched after twice as many frames (three times before it counts in "
        "the link threshold's calibration).",
    )
    window_s: float = Field(
        600.0, gt=0, description="Only gallery tracks seen this many wall-clock seconds ago or since."
    )
    update_every_s: float = Field(
        1.0, ge=0, description="An open reid or watchlist occurrence is re-sent at most this often (media seconds)."
    )
    # Watchlists (query by example).
    watch_threshold: float = Field(
        0.7, ge=-1, le=1, description="Cosine similarity of a track's appearance to an exemplar that is a match."
    )
    watch_max_misses: int = Field(2, ge=0, description="Frames without a match before a watchlist occurrence closes.")
    watch_cooldown_s: float = Field(
        10.0, ge=0, description="No new occurrence of the same exemplar on a stream this soon after one closed."
    )
    click_threshold: float = Field(
        0.6, ge=-1, le=1, description="Click to segment: patches at least this similar to the clicked patch."
    )


class PhaseSettings(_Strict):
    """Online segmentation of a long stream into phases (change points plus clustering)."""

    window: int = Field(8, ge=2, description="Frames on each side of a candidate change point.")
    min_distance: float = Field(
        0.02, ge=0, le=2, description="Cosine distance between the two windows' means below which nothing changes."
    )
    sensitivity: float = Field(
        6.0, gt=0, description="... and it must exceed the phase's usual distance by this many robust σ."
    )
    min_phase_s: float = Field(10.0, ge=0, description="Shortest phase, in media seconds.")
    revisit_factor: float = Field(
        1.0,
        gt=0,
        description="A new phase takes the label of an earlier one whose mean is closer than this times the "
        "distance that counted as its change.",
    )
    max_clusters: int = Field(64, ge=1, description="Phase labels remembered per stream.")
    update_every_s: float = Field(30.0, gt=0, description="An open phase is re-sent this often (media seconds).")


class QualitySettings(_Strict):
    """Camera health from each frame's thumbnail pixels (blurred, dark, covered), with hysteresis."""

    every_s: float = Field(1.0, ge=0, description="Thumbnails measured at most this often (media seconds).")
    blur_enter: float = Field(
        12.0,
        ge=0,
        description="Blurred when the thumbnail's Laplacian variance falls under this (a smooth scene in focus "
        "can read 15-40 at 160 px) ...",
    )
    blur_exit: float = Field(30.0, ge=0, description="... and no longer once it is back over this.")
    dark_enter: float = Field(0.08, ge=0, le=1, description="Dark when the mean brightness (0..1) falls under this ...")
    dark_exit: float = Field(0.15, ge=0, le=1, description="... and no longer once it is back over this.")
    covered_enter: float = Field(
        0.025, ge=0, le=1, description="Covered when the RMS contrast (0..1) falls under this (a uniform view) ..."
    )
    covered_exit: float = Field(0.05, ge=0, le=1, description="... and no longer once it is back over this.")
    min_duration_s: float = Field(3.0, ge=0, description="A condition opens an event once it has lasted this long ...")
    clear_s: float = Field(
        3.0, ge=0, description="... and the event closes once every condition has been gone this long."
    )
    update_every_s: float = Field(
        30.0, gt=0, description="An open quality event is re-sent this often (media seconds)."
    )

    @model_validator(mode="after")
    def _exit_past_enter(self) -> QualitySettings:
        for name in ("blur", "dark", "covered"):
            enter, leave = getattr(self, f"{name}_enter"), getattr(self, f"{name}_exit")
            if leave < enter:
                raise ValueError(f"{name}_exit ({leave}) must be at least {name}_enter ({enter}): the hysteresis band")
        return self


class AnalyticsSettings(_Strict):
    app_id: str = "dinostream-analytics"
    snapshot_every_s: float = Field(
        10.0, gt=0, description="Each stream's processor state is saved to the Faust table this often."
    )
    table_store: Literal["memory", "rocksdb"] = Field(
        "memory",
        description="Where the worker keeps its Faust table (the processors' saved state) between reads of its "
        "changelog topic: 'memory' rebuilds it from the whole changelog at every start and rebalance; 'rocksdb' "
        "keeps it on disk under data_dir/faust (with the changelog offset it has read to), so a restarted worker "
        "on the same volume reads only what was written since (the shipped Kubernetes StatefulSet). Needs the "
        "rocksdict package (a dependency).",
    )
    scene_change: SceneChangeSettings = SceneChangeSettings()
    anomaly: AnomalySettings = AnomalySettings()
    reid: ReidSettings = ReidSettings()
    phase: PhaseSettings = PhaseSettings()
    quality: QualitySettings = QualitySettings()


class IndexSettings(_Strict):
    qdrant_url: str | None = Field(None, description="Qdrant server URL; None uses embedded Qdrant Edge.")
    qdrant_api_key: str | None = None
    collection_prefix: str = "dinostream"
    batch_size: int = Field(64, ge=1, description="Upserts are batched up to this many points.")
    batch_wait_s: float = Field(
        0.5,
        ge=0,
        le=30,
        description="The index sink gathers records for up to this long (or batch_size) before it writes them: "
        "fewer, larger upserts and flushes.",
    )
    flush_every_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="The index sink persists the embedded index this often and only then commits what it read: "
        "a crash re-reads at most this long of records (idempotent upserts); 0 flushes every write.",
    )
    search_limit: int = Field(10, ge=1, le=1000)
    retention_days: float | None = Field(
        None, gt=0, description="Delete indexed frames and events older than this (wall clock); None keeps all."
    )
    retention_per_stream: dict[str, float | None] = Field(
        default_factory=dict,
        description="Per-stream retention in days, overriding retention_days; None keeps all. In `Settings`, a view "
        "of `streams.<id>.index.retention_days` (either spelling sets both).",
    )
    maintenance_every_s: float = Field(
        600.0, gt=0, description="How often the index sink applies retention and builds the search graph."
    )
    region_grid: int = Field(
        4, ge=1, le=8, description="Point search: each frame's patch grid is average-pooled to at most N x N cells."
    )
    search_candidates: int = Field(
        400, ge=10, le=10_000, description="A search merges this many nearest frames into moments, then pages them."
    )
    moment_gap_s: float = Field(
        2.0, ge=0, description="Search hits of one stream at most this many wall-clock seconds apart are one moment."
    )
    match_margin: float = Field(
        0.2, ge=0, le=2, description="A search keeps the frames scoring at least the best score minus this."
    )
    same_subject_threshold: float = Field(
        0.6, ge=-1, le=1, description="/api/v1/images/compare: cosine at or above which two images show one subject."
    )
    summary_max_frames: int = Field(
        20_000, ge=10, description="A stream summary reads at most this many frames of its window (evenly spread)."
    )
    qdrant_on_disk_vectors: bool = Field(
        False,
        description="Qdrant server: keep the original vectors on disk (memory-mapped), not in RAM; with "
        "qdrant_quantization the quantized copies stay in RAM for search.",
    )
    qdrant_quantization: Literal["none", "int8"] = Field(
        "none", description="Qdrant server: int8 scalar quantization of the frame vectors (4x less RAM), kept in RAM."
    )
    qdrant_on_disk_payload: bool = Field(
        False, description="Qdrant server: payloads (thumbnails, patch grids) on disk; indexed fields stay in RAM."
    )
    qdrant_shards: int | None = Field(
        None, ge=1, description="Qdrant server: shard_number of new collections. None: Qdrant's default."
    )
    qdrant_replication_factor: int | None = Field(
        None, ge=1, description="Qdrant server: replication_factor of new collections. None: Qdrant's default (1)."
    )
    vector_dims: int | None = Field(
        None,
        ge=1,
        description="The records' vector size (the model's hidden size, e.g. 384 for ViT-S/16) for the index and "
        "gateway roles; None reads it from the model's config.json (a Hub id needs the Hub or its cache).",
    )

    @field_validator("retention_per_stream")
    @classmethod
    def _stream_ids(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        from dinostream.core.records import check_stream_id

        for stream, days in v.items():
            check_stream_id(stream)
            if days is not None and not days > 0:
                raise ValueError(f"retention for stream {stream!r} must be > 0 days or null, got {days}")
        return v


Role = Literal["viewer", "operator", "admin"]


class ApiToken(_Strict):
    """One access token of the HTTP API, kept hashed: `python -m dinostream.dashboard.auth new NAME ROLE`
    makes one and prints its entry. `viewer` reads (events, thumbnails, search), `operator` also
    manages streams, the watchlist, analytics settings and WHIP, `admin` everything."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$", description="Who, in the audit log.")
    role: Role
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token's UTF-8 bytes")


class HttpSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="0 picks a free port.")
    max_upload_bytes: int = Field(10_000_000, ge=1024)
    ws_queue_size: int = Field(256, ge=1, description="Events buffered per websocket client before it is closed.")
    api_token: str | None = Field(
        None,
        min_length=8,
        description="An admin token given in clear (named 'api_token' in the audit log); prefer `tokens`. "
        "None and no `tokens`: no auth.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser Origins allowed on /ws/events besides same-origin ('*' allows any).",
    )
    ws_first_message_timeout_s: float = Field(
        1.0, gt=0, le=60, description="How long /ws/events waits for the client's subscribe message."
    )
    ws_resume_memory: int = Field(10_000, ge=0, description="Recent events kept in memory for fast resume.")
    ws_replay_limit: int = Field(10_000, ge=1, description="Most events replayed from Kafka to one resuming client.")
    # Access control and limits (dinostream.dashboard.guard): every request passes them.
    tokens: list[ApiToken] = Field(
        default_factory=list,
        description="Access tokens, hashed, each with a role; with any token (or api_token) set, every REST, WHIP "
        "and websocket request needs one (Authorization: Bearer on REST and WHIP).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names accepted besides the bind address, localhost and IP literals (a guard "
        "against DNS rebinding); '*' accepts any.",
    )
    metrics_public: bool = Field(False, description="Serve /metrics without a token even when tokens are set.")
    docs_public: bool = Field(
        False, description="Serve /docs and /openapi.json without a token even when tokens are set."
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM certificate (chain): serve HTTPS and WSS (with ssl_keyfile)."
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile.")
    max_body_bytes: int = Field(
        65_536, ge=1024, description="Largest request body of JSON endpoints (uploads have max_upload_bytes)."
    )
    max_request_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Pixels one request's uploaded pictures may decode to, all pictures together (memory bound).",
    )
    max_asset_bytes: int = Field(
        500_000_000, ge=1024, description="Largest picture or video POST /api/v1/assets stores (the request's limit)."
    )
    asset_retention_days: float = Field(
        7.0, gt=0, description="Stored assets are deleted this long after upload (checked on every upload and read)."
    )
    max_assets_total_bytes: int = Field(
        5_000_000_000, ge=1024, description="Stored assets in all, under <data dir>/assets; the oldest go first."
    )

    @model_validator(mode="after")
    def _tls_pair_and_unique_tokens(self) -> HttpSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: set both or neither")
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names) or (self.api_token is not None and "api_token" in names):
            raise ValueError("token names must be unique ('api_token' names the api_token setting)")
        return self


class IceServerSettings(_Strict):
    """One STUN or TURN server handed to the WebRTC peer connection."""

    urls: list[str] = Field(..., min_length=1, description="stun:host:port, turn:host:port?transport=udp, turns:...")
    username: str | None = None
    credential: str | None = None


class WhipSettings(_Strict):
    """WebRTC publishing over WHIP (RFC 9725): cameras and browsers POST an SDP offer per stream."""

    max_sessions: int = Field(8, ge=0, description="Concurrent WHIP publishers; more are refused with 503.")
    ice_servers: list[IceServerSettings] = Field(
        default_factory=list, description="STUN/TURN servers; empty: host candidates only (same host or LAN)."
    )
    max_offer_bytes: int = Field(64_000, ge=1024, description="Largest SDP offer accepted.")
    connect_timeout_s: float = Field(
        15.0, gt=0, description="A session whose video has not started this long after the offer is closed."
    )
    disconnect_grace_s: float = Field(
        5.0, ge=0, description="A 'disconnected' peer connection is closed if it does not recover within this."
    )


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _AlertTarget(_Strict):
    name: str = Field(..., pattern=_NAME, description="Referred to by rules' `targets`.")
    queue_size: int = Field(
        1000, ge=1, description="Alerts waiting for this target; when full the oldest is dropped (and counted)."
    )


class HttpTargetSettings(_AlertTarget):
    url: str = Field(..., pattern=r"^https?://[^\s]+$", description="http:// or https:// URL alerts are POSTed to.")
    timeout_s: float = Field(5.0, gt=0, description="Per attempt: connect, send and read the answer.")
    max_retries: int = Field(
        5, ge=0, description="Retries after the first attempt on connection errors, timeouts, 5xx and 429."
    )
    backoff_s: float = Field(0.5, gt=0, description="Wait before the first retry; doubled after each.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between retries (also caps Retry-After).")


class WebhookTargetSettings(HttpTargetSettings):
    """A JSON POST signed with HMAC-SHA256 (header X-Dinostream-Signature); see sinks/webhook_alert.py."""

    kind: Literal["webhook"] = "webhook"
    secret: SecretStr = Field(..., min_length=16, description="Shared HMAC key (at least 16 characters).")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (e.g. Authorization).")


class SlackTargetSettings(HttpTargetSettings):
    """A Slack-compatible incoming webhook: `{"text", "blocks"}` with one readable line."""

    kind: Literal["slack"] = "slack"


class MqttTargetSettings(_AlertTarget):
    """Publishes each alert (JSON) to `<topic_prefix>/<stream>/<type>`."""

    kind: Literal["mqtt"] = "mqtt"
    host: str = Field(..., min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("dinostream/events", pattern=r"^[^#+\s]+$", description="No MQTT wildcards.")
    qos: Literal[0, 1, 2] = 1
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(None, description="None: the broker assigns one.")
    keepalive_s: int = Field(60, ge=1)
    timeout_s: float = Field(10.0, gt=0, description="Connect, and wait for the broker's acknowledgement (QoS >= 1).")
    backoff_s: float = Field(0.5, gt=0, description="Wait before the first reconnect; doubled after each.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnects.")


AlertTargetSettings = Annotated[
    WebhookTargetSettings | SlackTargetSettings | MqttTargetSettings, Field(discriminator="kind")
]


class AlertRuleSettings(_Strict):
    """Which events alert which targets. Empty `types` or `streams` match all."""

    name: str = Field(..., pattern=_NAME)
    types: list[str] = Field(default_factory=list, description="Event types (scene_change, anomaly, ...); empty: all.")
    streams: list[str] = Field(default_factory=list, description="Stream ids; empty: all.")
    min_score: float = Field(0.0, description="Only events scoring at least this.")
    statuses: list[Literal["open", "update", "closed"]] = Field(
        ["open"],
        min_length=1,
        description="Which messages of an occurrence alert ('open' once per occurrence; instant events are 'closed').",
    )
    cooldown_s: float = Field(
        0.0,
        ge=0,
        description="After an occurrence alerted, another occurrence of the same type on the same stream alerts only "
        "this many seconds later, by the events' capture wall-clock time `ts` (not media time, not arrival time).",
    )
    targets: list[str] = Field(..., min_length=1, description="Names of configured targets.")

    @field_validator("types")
    @classmethod
    def _known_types(cls, v: list[str]) -> list[str]:
        from dinostream.core.records import EVENT_TYPES

        bad = [t for t in v if t not in EVENT_TYPES]
        if bad:
            raise ValueError(f"unknown event types {bad}; known: {', '.join(EVENT_TYPES)}")
        return v


class AlertSettings(_Strict):
    """Alert integrations (webhooks, Slack, MQTT) driven by rules; see sinks/alert_service.py."""

    group_id: str = Field("dinostream-alerts", description="Kafka consumer group of the alert service.")
    dead_letter_topic: str = Field(
        "dinostream.alerts.dead-letter", description="Alerts that could not be delivered, as JSON with the error."
    )
    dashboard_url: str | None = Field(
        None, pattern=r"^https?://[^\s]+$", description="Base URL of the dashboard, for links in alerts."
    )
    dedup_size: int = Field(100_000, ge=1, description="Deliveries remembered to drop redelivered messages.")
    dedup_ttl_s: float = Field(86_400.0, gt=0, description="... for at most this long (wall-clock seconds).")
    drain_timeout_s: float = Field(10.0, ge=0, description="On stop, wait this long for queued alerts to go out.")
    max_event_age_s: float | None = Field(
        3600.0,
        gt=0,
        description="Events captured longer ago than this are not alerted (a backlog after an outage, or the whole "
        "topic when alerts are first enabled); None alerts everything.",
    )
    targets: list[AlertTargetSettings] = Field(default_factory=list)
    rules: list[AlertRuleSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_resolve(self) -> AlertSettings:
        names = [t.name for t in self.targets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"alert target names must be unique, repeated: {dup}")
        rules = [r.name for r in self.rules]
        dup = sorted({n for n in rules if rules.count(n) > 1})
        if dup:
            raise ValueError(f"alert rule names must be unique, repeated: {dup}")
        for r in self.rules:
            missing = [t for t in r.targets if t not in names]
            if missing:
                raise ValueError(f"alert rule {r.name!r} names unknown targets {missing}; configured: {names}")
        return self


# -- per-stream settings ----------------------------------------------------------------------
#
# A stream runs with the global settings above, overlaid by its own values (Frigate's CameraConfig
# over the global config): `Settings.streams.<id>` from the settings file, then the overrides kept
# with the stream in the stream registry (set when it is added, changed by typed updates through
# the HTTP API). Only what differs is stored, so a changed global default reaches every stream
# that did not set that field itself.

STREAM_FIELDS: dict[str, tuple[str, ...]] = {
    "ingest": ("sample_fps", "decode", "realtime"),
    "model": ("image_size",),
    "index": ("retention_days",),
}
"""The fields a stream may set for itself, per section; each `analytics` processor section takes
every field of its settings model. The rest (URL policy, broker, model weights...) is global."""

MAX_STREAM_IMAGE_SIZE = 1024  # a stream's own model resolution (`resolution` in the API) is at most this

_SECTIONS: dict[str, type[BaseModel]] = {"ingest": IngestSettings, "model": ModelSettings, "index": IndexSettings}


def analytics_processors() -> list[str]:
    """The processor sections of `AnalyticsSettings` ("scene_change", "anomaly", ...)."""
    return [
        name
        for name, f in AnalyticsSettings.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    ]


def section_model(section: str) -> type[BaseModel]:
    """The settings model of a per-stream section: "ingest", "model", "index" or "analytics.<processor>"."""
    if section in _SECTIONS:
        return _SECTIONS[section]
    group, _, processor = section.partition(".")
    if group == "analytics" and processor in analytics_processors():
        model = AnalyticsSettings.model_fields[processor].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        return model
    known = [*_SECTIONS, *(f"analytics.{p}" for p in analytics_processors())]
    raise ValueError(f"unknown settings section {section!r}; a stream may set: {', '.join(known)}")


def _messages(e: ValidationError, name: Callable[[str], str]) -> list[str]:
    out = []
    for err in e.errors():
        loc = [str(p) for p in err["loc"]]
        where = ".".join([name(loc[0]), *loc[1:]]) if loc else name("")
        out.append(f"{where}: {_error_msg(err)}" if where else _error_msg(err))
    return out


def validate_overrides(
    section: str, values: Mapping[str, Any], name: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """`values` (some fields of `section`) checked by the section's own settings model and
    normalised ("4" -> 4.0); ValueError names each bad field as `name(field)` (default
    "<section>.<field>").

    >>> validate_overrides("analytics.anomaly", {"threshold": "1.5"})
    {'threshold': 1.5}
    """
    label = name or (lambda field: f"{section}.{field}" if field else section)
    if not isinstance(values, Mapping):
        raise ValueError(f"{label('')}: expected an object of settings, got {type(values).__name__}")
    model = section_model(section)
    allowed = STREAM_FIELDS.get(section)
    problems = []
    for field in values:
        if field not in model.model_fields:
            problems.append(f"{label(field)}: unknown setting; {section} has {', '.join(model.model_fields)}")
        elif allowed is not None and field not in allowed:
            problems.append(f"{label(field)}: set for all streams only; per stream: {', '.join(allowed)}")
    if section == "model" and isinstance(values.get("image_size"), int):
        if values["image_size"] > MAX_STREAM_IMAGE_SIZE:
            problems.append(f"{label('image_size')}: at most {MAX_STREAM_IMAGE_SIZE} for one stream")
    if problems:
        raise ValueError("; ".join(problems))
    try:
        checked = model.model_validate(dict(values))  # the fields not given take the model's defaults
    except ValidationError as e:
        raise ValueError("; ".join(_messages(e, label))) from None
    return {field: getattr(checked, field) for field in values}


def _merged(base: M, values: Mapping[str, Any], where: str) -> M:
    if not values:
        return base
    try:
        return type(base).model_validate({**base.model_dump(), **values})
    except ValidationError as e:  # a combination with the global values (e.g. model.patch_pool)
        raise ValueError("; ".join(_messages(e, lambda field: f"{where}.{field}" if field else where))) from None


class StreamUpdate(_Strict):
    """A typed change of one stream's overrides: set some fields of one section and reset others to
    the layer below (the settings file, then the global default).

    >>> StreamOverrides().apply(StreamUpdate.analytics("anomaly", threshold=1.5)).analytics
    {'anomaly': {'threshold': 1.5}}
    """

    section: str = Field(description='"ingest", "model", "index" or "analytics.<processor>".')
    changes: dict[str, Any] = Field(default_factory=dict, description="Fields set to these values.")
    reset: tuple[str, ...] = Field((), description="Fields that take the layer below again.")

    @field_validator("section")
    @classmethod
    def _known(cls, v: str) -> str:
        section_model(v)
        return v

    @classmethod
    def analytics(cls, processor: str, changes: Mapping[str, Any] | None = None, **fields: Any) -> StreamUpdate:
        return cls(section=f"analytics.{processor}", changes={**(changes or {}), **fields})


class StreamOverrides(_Strict):
    """One stream's settings that differ from the layer below, by section; each value validated by
    the section's own model. Immutable: `apply` returns a new, validated object.

    >>> o = StreamOverrides(ingest={"sample_fps": 5}, analytics={"anomaly": {"threshold": 1.5}})
    >>> o.effective(Settings()).analytics.anomaly.threshold
    1.5
    """

    ingest: dict[str, Any] = Field(default_factory=dict, description=f"Of {', '.join(STREAM_FIELDS['ingest'])}.")
    model: dict[str, Any] = Field(default_factory=dict, description="image_size: this stream's model resolution.")
    index: dict[str, Any] = Field(default_factory=dict, description="retention_days: None keeps all.")
    analytics: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="processor -> its settings (scene_change: {min_shot_s: 2}, ...)."
    )

    @model_validator(mode="before")
    @classmethod
    def _validated(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section in _SECTIONS:
            if data.get(section) is not None:
                data[section] = validate_overrides(section, data[section])
        if data.get("analytics") is not None:
            if not isinstance(data["analytics"], Mapping):
                raise ValueError("analytics: expected an object {processor: {field: value}}")
            problems: list[str] = []
            checked: dict[str, dict[str, Any]] = {}
            for processor, values in data["analytics"].items():
                try:
                    if values:
                        checked[processor] = validate_overrides(f"analytics.{processor}", values)
                    else:
                        section_model(f"analytics.{processor}")
                except ValueError as e:
                    problems.append(str(e))
            if problems:
                raise ValueError("; ".join(problems))
            data["analytics"] = checked
        return data

    @property
    def empty(self) -> bool:
        return not (self.ingest or self.model or self.index or self.analytics)

    def values(self, section: str) -> dict[str, Any]:
        """The fields `section` ("ingest", "analytics.anomaly", ...) sets."""
        section_model(section)
        group, _, processor = section.partition(".")
        return dict(self.analytics.get(processor, {})) if processor else dict(getattr(self, group))

    def apply(self, update: StreamUpdate) -> StreamOverrides:
        """A new object with `update` applied, validated; ValueError names a bad field."""
        values = {k: v for k, v in self.values(update.section).items() if k not in update.reset}
        values.update(update.changes)
        return self._with({update.section: values})

    def over(self, below: StreamOverrides | None) -> StreamOverrides:
        """These overrides layered over `below` (ours win, field by field)."""
        if below is None or below.empty:
            return self
        if self.empty:
            return below
        sections = [*_SECTIONS, *(f"analytics.{p}" for p in {*below.analytics, *self.analytics})]
        return below._with({s: {**below.values(s), **self.values(s)} for s in sections})

    def _with(self, sections: Mapping[str, dict[str, Any]]) -> StreamOverrides:
        data: dict[str, Any] = self.model_dump()
        for section, values in sections.items():
            group, _, processor = section.partition(".")
            if not processor:
                data[group] = values
            elif values:
                data["analytics"][processor] = values
            else:
                data["analytics"].pop(processor, None)
        try:
            return StreamOverrides.model_validate(data)
        except ValidationError as e:
            raise ValueError("; ".join(_messages(e, str))) from None

    def section_over(self, section: str, base: M) -> M:
        """`base` (the section's settings below this stream) with this stream's values of `section`;
        `base` itself when it sets none. ValueError names a field the combination breaks."""
        return _merged(base, self.values(section), section)

    def effective(self, settings: Settings) -> Settings:
        """`settings` with these overrides applied, every section validated; ValueError names the field."""
        if self.empty:
            return settings
        analytics = settings.analytics.model_copy(
            update={p: self.section_over(f"analytics.{p}", getattr(settings.analytics, p)) for p in self.analytics}
        )
        return settings.model_copy(
            update={
                "ingest": self.section_over("ingest", settings.ingest),
                "model": self.section_over("model", settings.model),
                "index": self.section_over("index", settings.index),
                "analytics": analytics,
            }
        )


def stream_settings(settings: Settings, stream: str, overrides: StreamOverrides | None = None) -> Settings:
    """The settings `stream` runs with: `settings`, then its `settings.streams` entry (the settings
    file), then `overrides` (its own, kept in the stream registry). ValueError names a bad field.

    >>> stream_settings(Settings(streams={"cam1": {"ingest": {"sample_fps": 5}}}), "cam1").ingest.sample_fps
    5.0
    """
    configured = settings.streams.get(stream)
    layered = overrides.over(configured) if overrides is not None else configured
    return layered.effective(settings) if layered is not None else settings


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _same(a: Any, b: Any) -> bool:
    try:
        return a == b or (a is not None and b is not None and float(a) == float(b))
    except (TypeError, ValueError):
        return False


class Settings(_Strict):
    """Everything `dinostream up` needs."""

    data_dir: Path = Path("dinostream-data")
    sources: list[str] = Field(default_factory=list)
    blas_threads: int = Field(
        1,
        ge=0,
        description="Threads of numpy's and scipy's BLAS in each process running roles (torch's are the "
        "model's): the roles' products are small, so more threads only spin (`dinostream.core.blas`). 0: one "
        "per core, the libraries' default.",
    )
    ingest: IngestSettings = IngestSettings()
    model: ModelSettings = ModelSettings()
    kafka: KafkaSettings = KafkaSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    index: IndexSettings = IndexSettings()
    http: HttpSettings = HttpSettings()
    whip: WhipSettings = WhipSettings()
    alerts: AlertSettings = AlertSettings()
    streams: dict[str, StreamOverrides] = Field(
        default_factory=dict,
        description="Per-stream settings over the sections above, by stream id (see `StreamOverrides`); streams "
        "added through the HTTP API keep theirs in the stream registry, layered on top (`stream_settings`).",
    )

    @field_validator("streams")
    @classmethod
    def _stream_ids(cls, v: dict[str, StreamOverrides]) -> dict[str, StreamOverrides]:
        from dinostream.core.records import check_stream_id

        for stream in v:
            check_stream_id(stream)
        return v

    @model_validator(mode="before")
    @classmethod
    def _one_retention_per_stream(cls, data: Any) -> Any:
        """`index.retention_per_stream` (the older spelling) and `streams.<id>.index.retention_days` are
        one setting: given either way, both show it; given both ways, they must agree."""
        if not isinstance(data, dict):
            return data
        index, streams = data.get("index"), data.get("streams")
        listed = dict(_get(index, "retention_per_stream") or {})
        per_stream = {}
        for sid, o in (streams or {}).items() if isinstance(streams, Mapping) else ():
            section = _get(o, "index")
            if isinstance(section, Mapping) and "retention_days" in section:
                per_stream[sid] = section["retention_days"]
        if not listed and not per_stream:
            return data
        for sid in listed.keys() & per_stream.keys():
            if not _same(listed[sid], per_stream[sid]):
                raise ValueError(
                    f"retention of stream {sid!r} is set twice: index.retention_per_stream says {listed[sid]}, "
                    f"streams.{sid}.index.retention_days says {per_stream[sid]}"
                )
        merged = {**listed, **per_stream}
        new_streams = dict(streams or {})
        for sid, days in merged.items():
            if sid not in per_stream:
                o = new_streams.get(sid) or {}
                o = o.model_dump() if isinstance(o, BaseModel) else dict(o)
                o["index"] = {**(o.get("index") or {}), "retention_days": days}
                new_streams[sid] = o
        if isinstance(index, BaseModel):
            index = index.model_dump()
        return {**data, "index": {**(index or {}), "retention_per_stream": merged}, "streams": new_streams}
