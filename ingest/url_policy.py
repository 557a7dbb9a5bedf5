"""Which video sources may be opened, and how: the policy between a URL and `av.open`.

FFmpeg opens far more than video: `concat:`, `subfile:`, `file:` segments named by a remote
playlist, cloud metadata endpoints. `check_url` turns a user's source into a `CheckedUrl`
(kind, target, demuxer, options with a per-kind `protocol_whitelist`) or refuses it with a
`UrlRefused` naming the reason.

Sources the operator gives on the command line are `trusted` (any local file, loopback and
private hosts, camera devices); sources added through the HTTP API are not, and must pass
`trusted=False`: files only under `media_roots`, camera devices only from `allowed_devices`, public
hosts only (an IPv4 address inside an IPv6 one, NAT64, 6to4, Teredo or IPv4-compatible, is judged
as that IPv4 address), no HTTP redirects, and only the demuxers of plain video files, so a
playlist served under another name is never read unchecked (`FORMATS`).

    checked = check_url("rtsp://cam.example.com/live", IngestSettings(), trusted=False)
    av.open(checked.target, format=checked.av_format, options=checked.options)
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings

Kind = Literal["file", "rtsp", "http", "hls", "mjpeg", "v4l2"]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
RESOLVE_TIMEOUT_S = 5.0  # host name lookups give up after this long

# FFmpeg protocols each kind may use, nested opens (HLS segments, RTP, TLS) included.
PROTOCOLS: dict[str, str] = {
    "file": "file",
    "v4l2": "file",
    "rtsp": "rtsp,rtp,udp,tcp",
    "rtsps": "rtsp,rtp,udp,tcp,tls",
    "http": "http,tcp",
    "https": "https,tls,tcp",
    "hls": "http,https,tcp,tls,crypto",
}

# Demuxers an untrusted network source may be read with (FFmpeg's format_whitelist; a demuxer
# matches when any of its names is listed): single streams, never a playlist or concat list whose
# entries FFmpeg would open. HLS checks its playlists first, then reads segments with these.
FORMATS: dict[str, str] = {
    "http": "mov,matroska,mpegts,flv,avi,mjpeg,mpjpeg,h264,hevc,m4v,mpeg,ogg,asf,ivf,obu",
    "hls": "hls,mpegts,mov,aac,mp3,ac3,eac3,webvtt",
    # A file under a media root: the same single-stream demuxers (and raw YUV4MPEG). An HLS playlist or
    # ffconcat list placed there would name files outside the roots, which FFmpeg would open.
    "file": "mov,matroska,mpegts,flv,avi,mjpeg,mpjpeg,h264,hevc,m4v,mpeg,ogg,asf,ivf,obu,yuv4mpegpipe",
}

_V4L2_DEVICE = re.compile(r"/dev/video[0-9]{1,3}")
_HLS_SUFFIXES = (".m3u8", ".m3u")
_MJPEG_SUFFIXES = (".mjpg", ".mjpeg")

# Ranges refused to untrusted sources unless allowed by a setting; link-local is never allowed.
_LOOPBACK = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "0.0.0.0/8", "::1/128", "::/128"))
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_LINK_LOCAL = tuple(ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated, still routed by some stacks)


class UrlRefused(SourceError):
    """A source the policy will not open; the message names the source and the reason."""


@dataclass(frozen=True)
class CheckedUrl:
    """A source that passed `check_url`: what `av.open` gets, and how to name it in messages."""

    kind: Kind
    target: str  # absolute file path, device path, or URL
    display: str  # for messages and logs: the source as given, password redacted
    scheme: str  # "file", "v4l2", or one of NETWORK_SCHEMES
    av_format: str | None = None  # demuxer to force (None: FFmpeg probes)
    options: dict[str, str] = field(default_factory=dict)  # av.open options, protocol_whitelist included
    trusted: bool = False  # checked as an operator's source (see check_url)

    @property
    def is_network(self) -> bool:
        return self.scheme in NETWORK_SCHEMES

    @property
    def is_live(self) -> bool:
        """Live sources (network, camera) drop frames rather than hold back the decoder."""
        return self.kind != "file"


def redact(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def check_url(
    url: str,
    settings: IngestSettings,
    *,
    trusted: bool = False,
    resolve: Callable[[str, float], Sequence[str]] | None = None,
) -> CheckedUrl:
    """Check a source against the policy; raise UrlRefused (a SourceError) naming the reason.

    `trusted`: the operator gave it on the command line (files anywhere, loopback and private
    hosts allowed). The HTTP API must pass `trusted=False`. `resolve(host, timeout)` returns the
    host's addresses (default: socket.getaddrinfo in a thread, bounded by RESOLVE_TIMEOUT_S).
    """
    if not url or not url.strip():
        raise UrlRefused("empty source: give a video file path or an rtsp://, rtsps://, http(s):// URL")
    if "\x00" in url or any(c in url for c in "\r\n"):
        raise UrlRefused(f"refused source {url!r}: it contains control characters")
    if _V4L2_DEVICE.fullmatch(url):
        return _v4l2(url, settings, trusted)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "v4l2":
        device = parts.path if parts.netloc == "" else ""
        if not _V4L2_DEVICE.fullmatch(device):
            raise UrlRefused(f"refused source {url}: a v4l2 source names a camera device, v4l2:///dev/videoN")
        return _v4l2(device, settings, trusted)
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):  # len 1: a Windows drive letter
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise UrlRefused(f"refused source {url}: only local files (file:///path) can be read")
            path = unquote(parts.path)
        else:
            path = url
        return _file(path, url, settings, trusted)
    display = redact(url)
    if scheme not in NETWORK_SCHEMES:
        raise UrlRefused(
            f"refused source {display}: scheme {scheme}: is not allowed; use a video file path, a /dev/videoN "
            "camera, or an rtsp://, rtsps://, http:// or https:// URL"
        )
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise UrlRefused(f"refused source {display}: invalid URL ({exc})") from None
    if not host:
        raise UrlRefused(f"invalid source URL {display}: it names no host")
    _check_host(host, display, settings, trusted, resolve or _resolve)
    return _network(url, display, scheme, parts.path, settings, trusted)


def _v4l2(device: str, settings: IngestSettings, trusted: bool) -> CheckedUrl:
    """A camera device: any when trusted, else only one listed in `settings.allowed_devices`."""
    if not trusted and device not in settings.allowed_devices:
        raise UrlRefused(
            f"refused camera device {device}: sources added through the API may open only the devices listed in "
            "ingest.allowed_devices"
        )
    return CheckedUrl(
        kind="v4l2",
        target=device,
        display=device,
        scheme="v4l2",
        av_format="video4linux2",
        options={"protocol_whitelist": PROTOCOLS["v4l2"]},
        trusted=trusted,
    )


def _file(path: str, given: str, settings: IngestSettings, trusted: bool) -> CheckedUrl:
    """A local file: anywhere when trusted, else only under a media root (symlinks followed)."""
    display = path
    if trusted:
        target = os.path.abspath(path)  # absolute: FFmpeg must not read "a:b.mp4" as protocol "a"
    else:
        roots = [os.path.realpath(root) for root in settings.media_roots]
        if not roots:
            raise UrlRefused(f"refused file {display}: no media_roots are configured, so no files can be added")
        base = path if os.path.isabs(path) else os.path.join(roots[0], path)
        target = os.path.realpath(base)  # follows symlinks and removes ".." before the check
        if not any(os.path.commonpath([target, root]) == root for root in roots):
            raise UrlRefused(
                f"refused file {display}: it is outside the media roots ({', '.join(roots)})"
                + (" after resolving '..'/symlinks" if target != os.path.normpath(base) or ".." in path else "")
            )
    options = {"protocol_whitelist": PROTOCOLS["file"]}
    if not trusted:
        options["format_whitelist"] = FORMATS["file"]
    return CheckedUrl(kind="file", target=target, display=display, scheme="file", options=options, trusted=trusted)


def _network(url: str, display: str, scheme: str, path: str, settings: IngestSettings, trusted: bool) -> CheckedUrl:
    lower = unquote(path).lower()
    options: dict[str, str]
    if scheme in ("rtsp", "rtsps"):
        options = {
            "protocol_whitelist": PROTOCOLS[scheme],
            "rtsp_transport": settings.rtsp_transport,
            # socket I/O timeout in microseconds; av.open's own timeouts bound the whole open/read too
            "timeout": str(int(settings.read_timeout_s * 1_000_000)),
        }
        return CheckedUrl("rtsp", url, display, scheme, "rtsp", options, trusted)
    options = {"rw_timeout": str(int(settings.read_timeout_s * 1_000_000))}
    if not trusted:
        # A redirect could lead anywhere (169.254.169.254 included) after the host was checked.
        options["max_redirects"] = "0"
    if lower.endswith(_HLS_SUFFIXES):
        options["protocol_whitelist"] = PROTOCOLS["hls"]
        if not trusted:
            options["format_whitelist"] = FORMATS["hls"]
        return CheckedUrl("hls", url, display, scheme, "hls", options, trusted)
    options["protocol_whitelist"] = PROTOCOLS[scheme]
    if not trusted:
        # FFmpeg also picks its HLS demuxer by content (a playlist served as cam.mp4 with an HLS
        # Content-Type), and that playlist was never checked: only plain video demuxers.
        options["format_whitelist"] = FORMATS["http"]
    if lower.endswith(_MJPEG_SUFFIXES):
        return CheckedUrl("mjpeg", url, display, scheme, "mpjpeg", options, trusted)
    return CheckedUrl("http", url, display, scheme, None, options, trusted)


# URI= of any tag (EXT-X-KEY, EXT-X-MAP, EXT-X-MEDIA, EXT-X-I-FRAME-STREAM-INF, ...), quoted or not:
# FFmpeg's attribute parser takes an unquoted value up to the next comma.
_URI_ATTRIBUTE = re.compile(r'(?:^|[:,])\s*URI\s*=\s*(?:"([^"]*)"|([^,"]*))', re.IGNORECASE)
# Tags whose URI (or, for EXT-X-STREAM-INF, the next URI line) is another playlist.
_PLAYLIST_TAGS = ("#EXT-X-STREAM-INF", "#EXT-X-MEDIA:", "#EXT-X-I-FRAME-STREAM-INF")


def _attribute_uris(line: str) -> list[str]:
    return [(quoted or bare).strip() for quoted, bare in _URI_ATTRIBUTE.findall(line) if (quoted or bare).strip()]


def playlist_uris(text: str) -> list[str]:
    """Every URI an HLS playlist names: segment and variant lines, and URI attributes (keys, maps,
    renditions), quoted or not."""
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            uris.extend(_attribute_uris(line))
        else:
            uris.append(line)
    return uris


def variant_uris(text: str) -> list[str]:
    """The URIs of a master playlist that FFmpeg reads as playlists (variant streams, renditions,
    I-frame playlists), whatever their names end with."""
    uris: list[str] = []
    next_is_variant = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            upper = line.upper()
            if upper.startswith("#EXT-X-STREAM-INF"):
                next_is_variant = True
            elif upper.startswith(_PLAYLIST_TAGS):
                uris.extend(_attribute_uris(line))
        elif next_is_variant:
            uris.append(line)
            next_is_variant = False
    return uris


def check_playlist(
    text: str,
    playlist: CheckedUrl,
    settings: IngestSettings,
    *,
    resolve: Callable[[str, float], Sequence[str]] | None = None,
) -> list[str]:
    """Check every URI an HLS playlist names against the policy; return them as absolute URLs.

    A playlist may name only http(s) URLs (relative ones resolve against the playlist's URL):
    a `file:` segment or any other protocol is refused, and so is a host the playlist's own
    trust would refuse. FFmpeg's protocol_whitelist enforces the protocol rule again at read time.
    A variant playlist (`variant_uris`) must end in .m3u8 or .m3u, the names the caller fetches
    and checks in turn; one named otherwise is refused rather than read by FFmpeg unchecked.
    """
    if not is_playlist(text):
        raise UrlRefused(f"cannot open HLS stream {playlist.display}: the response is not an HLS playlist (#EXTM3U)")
    for uri in variant_uris(text):
        if not unquote(urlsplit(urljoin(playlist.target, uri)).path).lower().endswith(_HLS_SUFFIXES):
            raise UrlRefused(
                f"refused HLS playlist {playlist.display}: its variant playlist {redact(uri)} does not end in .m3u8, "
                "so it cannot be checked before FFmpeg reads it"
            )
    hosts: dict[str, None] = {}
    absolute: list[str] = []
    for uri in playlist_uris(text):
        url = urljoin(playlist.target, uri)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlRefused(
                f"refused HLS playlist {playlist.display}: it names {redact(uri)}, but a playlist may name only "
                "http(s) URLs (local files and other protocols are never read)"
            )
        host = (urlsplit(url).hostname or "").lower()
        if host not in hosts:
            hosts[host] = None
            try:
                check_url(url, settings, trusted=playlist.trusted, resolve=resolve)
            except UrlRefused as exc:
                raise UrlRefused(f"refused HLS playlist {playlist.display}: it names {redact(uri)}: {exc}") from None
        absolute.append(url)
    return absolute


def is_playlist(content: str | bytes) -> bool:
    """Whether a response is an HLS playlist, by its content (#EXTM3U first), not its name."""
    head = content[:64].decode("utf-8", "replace") if isinstance(content, bytes) else content[:64]
    return head.lstrip("\ufeff \t\r\n").startswith("#EXTM3U")


def checked_addresses(
    host: str,
    display: str,
    settings: IngestSettings,
    trusted: bool,
    resolve: Callable[[str, float], Sequence[str]] | None = None,
) -> list[IpAddress]:
    """The addresses of `host`, every one allowed (connect to these, not to the name: a second lookup
    could answer otherwise); UrlRefused naming the host when any is off limits or it has none."""
    addresses = _check_host(host, display, settings, trusted, resolve or _resolve)
    if not addresses:
        raise UrlRefused(f"refused source {display}: cannot resolve host {host}")
    return addresses


def _check_host(
    host: str, display: str, settings: IngestSettings, trusted: bool, resolve: Callable[[str, float], Sequence[str]]
) -> list[IpAddress]:
    """Refuse a host whose address (or any address it resolves to) is off limits; its addresses
    (none when a trusted host does not resolve: FFmpeg reports that when it opens)."""
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = resolve(host, RESOLVE_TIMEOUT_S)
        except OSError as exc:
            if trusted:  # the operator's own host: FFmpeg reports the failure when it opens
                return []
            raise UrlRefused(f"refused source {display}: cannot resolve host {host} ({exc})") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses and not trusted:
            raise UrlRefused(f"refused source {display}: host {host} has no address")
    for address in addresses:
        reason = address_refusal(address, settings, trusted)
        if reason:
            shown = host if str(address) == host else f"{host} ({address})"
            raise UrlRefused(f"refused source {display}: host {shown} is {reason}")
    return addresses


def _ip_literal(host: str) -> IpAddress | None:
    """The address a host names literally, in any form FFmpeg's resolver accepts (2852039166, 0xa9fea9fe)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (%eth0) is not part of the address
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_refusal(address: IpAddress, settings: IngestSettings, trusted: bool) -> str | None:
    """Why a source on `address` is refused, or None when it is allowed. An IPv6 address that
    carries an IPv4 one (mapped, NAT64, 6to4, Teredo, IPv4-compatible) is judged as the IPv4 one."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        reason = address_refusal(embedded, settings, trusted)
        return f"{reason} ({embedded} inside an IPv6 address)" if reason else None
    if any(address in net for net in _LINK_LOCAL):
        return "a link-local address (cloud metadata and similar), never allowed"
    if any(address in net for net in _LOOPBACK):
        if trusted or settings.allow_loopback:
            return None
        return "a loopback address; set ingest.allow_loopback to allow it"
    if any(address in net for net in _PRIVATE):
        if trusted or settings.allow_private_networks:
            return None
        return "a private-network address; set ingest.allow_private_networks to allow it"
    if address.is_multicast and not trusted:
        return "a multicast address, not allowed for sources added through the API"
    if not address.is_global and not trusted:
        return "a reserved (non-public) address, not allowed for sources added through the API"
    return None


def embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through a translation or tunnel form, if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client behind the tunnel
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # :: and ::1 are IPv6's own
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _resolve(host: str, timeout: float) -> list[str]:
    """The addresses of `host` (getaddrinfo), giving up after `timeout` seconds."""
    result: list[str] = []
    error: list[OSError] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            result.extend(str(info[4][0]) for info in infos)
        except OSError as exc:
            error.append(exc)
        except UnicodeError as exc:  # an invalid IDNA name
            error.append(OSError(str(exc)))

    thread = threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise OSError(f"no answer within {timeout:g} s")
    if error:
        raise OSError(error[0].strerror or str(error[0]))
    return list(dict.fromkeys(result))
