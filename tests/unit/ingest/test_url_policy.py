import os
import socket
import time
from pathlib import Path

import pytest

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest import url_policy
from dinostream.ingest.url_policy import (
    FORMATS,
    CheckedUrl,
    UrlRefused,
    check_playlist,
    check_url,
    is_playlist,
    playlist_uris,
    variant_uris,
)

# Host names resolve through this table, not DNS: tests see exactly the addresses they name.
HOSTS = {
    "cam.example.com": ["93.184.216.34"],
    "metadata.evil.example": ["169.254.169.254"],
    "mixed.evil.example": ["93.184.216.34", "10.0.0.7"],  # one public, one private address
    "lan-cam.example": ["192.168.1.20"],
    "v6.example": ["2001:4860:4860::8888"],
}


def _resolve(host: str, timeout: float) -> list[str]:
    try:
        return HOSTS[host]
    except KeyError:
        raise OSError("Name or service not known") from None


@pytest.fixture
def media(tmp_path) -> Path:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "clip.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (root / "link.mp4").symlink_to(tmp_path / "secret.mp4")  # a symlink out of the root
    return root


def _check(url: str, settings: IngestSettings | None = None, *, trusted: bool = False) -> CheckedUrl:
    return check_url(url, settings or IngestSettings(), trusted=trusted, resolve=_resolve)


# -- what is allowed, and how it is opened -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "av_format", "whitelist"),
    [
        ("rtsp://cam.example.com/live", "rtsp", "rtsp", "rtsp,rtp,udp,tcp"),
        ("rtsps://cam.example.com:322/live", "rtsp", "rtsp", "rtsp,rtp,udp,tcp,tls"),
        ("http://cam.example.com/video.ts", "http", None, "http,tcp"),
        ("https://cam.example.com/video.mp4", "http", None, "https,tls,tcp"),
        ("https://cam.example.com/live/index.m3u8?token=1", "hls", "hls", "http,https,tcp,tls,crypto"),
        ("http://cam.example.com/axis-cgi/video.mjpg", "mjpeg", "mpjpeg", "http,tcp"),
        ("http://[2001:4860:4860::8888]/a.ts", "http", None, "http,tcp"),
        ("https://v6.example/a.ts", "http", None, "https,tls,tcp"),
        ("/dev/video0", "v4l2", "video4linux2", "file"),
        ("v4l2:///dev/video12", "v4l2", "video4linux2", "file"),
    ],
    ids=["rtsp", "rtsps", "http", "https", "hls", "mjpeg", "ipv6-literal", "ipv6-host", "v4l2-path", "v4l2-url"],
)
def test_public_sources_are_accepted_untrusted_with_a_protocol_whitelist(url, kind, av_format, whitelist):
    # Camera devices only when the settings list them (test_camera_devices_need_the_allowlist_untrusted).
    checked = _check(url, IngestSettings(allowed_devices=["/dev/video0", "/dev/video12"]))
    assert (checked.kind, checked.av_format) == (kind, av_format)
    assert checked.options["protocol_whitelist"] == whitelist
    assert "file" not in checked.options["protocol_whitelist"].split(",") or kind == "v4l2"
    assert checked.trusted is False


@pytest.mark.parametrize("url", ["/dev/video0", "v4l2:///dev/video0"])
def test_camera_devices_need_the_allowlist_untrusted(url):
    with pytest.raises(UrlRefused, match=r"refused camera device /dev/video0: .*ingest\.allowed_devices"):
        _check(url)
    with pytest.raises(UrlRefused, match="allowed_devices"):
        _check(url, IngestSettings(allowed_devices=["/dev/video1"]))
    assert _check(url, IngestSettings(allowed_devices=["/dev/video0"])).target == "/dev/video0"
    assert _check(url, trusted=True).target == "/dev/video0"  # the operator's command line


def test_untrusted_network_sources_are_read_only_with_plain_video_demuxers():
    # FFmpeg picks its HLS demuxer by content too (a playlist served as cam.mp4): not for these.
    for url in ("http://cam.example.com/cam.mp4", "https://cam.example.com/live", "http://cam.example.com/a.mjpg"):
        formats = _check(url).options["format_whitelist"].split(",")
        assert "hls" not in formats and "concat" not in formats and "mov" in formats
    hls = _check("http://cam.example.com/live/index.m3u8").options["format_whitelist"].split(",")
    assert "hls" in hls and "concat" not in hls
    assert "format_whitelist" not in _check("http://cam.example.com/cam.mp4", trusted=True).options


def test_rtsp_gets_transport_and_socket_timeout_from_settings():
    tcp = _check("rtsp://cam.example.com/live", IngestSettings(read_timeout_s=2.5))
    udp = _check("rtsp://cam.example.com/live", IngestSettings(rtsp_transport="udp"))
    assert tcp.options["rtsp_transport"] == "tcp" and tcp.options["timeout"] == "2500000"
    assert udp.options["rtsp_transport"] == "udp"


def test_untrusted_http_does_not_follow_redirects_but_trusted_does():
    assert _check("http://cam.example.com/a.ts").options["max_redirects"] == "0"
    assert "max_redirects" not in _check("http://cam.example.com/a.ts", trusted=True).options
    assert "max_redirects" not in _check("rtsp://cam.example.com/a").options  # RTSP has no redirects to follow


def test_files_under_a_media_root_are_accepted_untrusted(media):
    settings = IngestSettings(media_roots=[media])
    for given in [str(media / "sub" / "clip.mp4"), f"file://{media}/sub/clip.mp4", "sub/clip.mp4"]:
        checked = _check(given, settings)
        assert checked.kind == "file"
        assert checked.target == os.path.realpath(media / "sub" / "clip.mp4")
        # Single-stream demuxers only: a playlist or concat list there could name files outside the roots.
        assert checked.options == {"protocol_whitelist": "file", "format_whitelist": FORMATS["file"]}
        assert "hls" not in FORMATS["file"].split(",") and "concat" not in FORMATS["file"].split(",")


def test_trusted_files_may_be_anywhere_and_are_opened_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = _check("clip.mp4", trusted=True)
    assert checked.target == str(tmp_path / "clip.mp4") and checked.display == "clip.mp4"
    assert _check("/etc/hostname", trusted=True).target == "/etc/hostname"


@pytest.mark.parametrize(
    ("url", "setting"),
    [
        ("http://127.0.0.1:8080/a.ts", "allow_loopback"),
        ("rtsp://[::1]/live", "allow_loopback"),
        ("rtsp://10.1.2.3/live", "allow_private_networks"),
        ("rtsp://lan-cam.example/live", "allow_private_networks"),
        ("rtsp://100.64.0.9/live", "allow_private_networks"),
        ("rtsp://[fd00::5]/live", "allow_private_networks"),
    ],
    ids=["loopback-v4", "loopback-v6", "rfc1918", "rfc1918-by-name", "cgnat", "ula-v6"],
)
def test_loopback_and_private_hosts_need_their_setting_unless_trusted(url, setting):
    with pytest.raises(UrlRefused, match=setting):
        _check(url)
    assert _check(url, IngestSettings(**{setting: True})).kind in ("rtsp", "http")
    assert _check(url, trusted=True).trusted


# -- what is refused -------------------------------------------------------------------------


HOSTILE = [
    ("outside-media-root", "{tmp}/secret.mp4", "outside the media roots"),
    ("dotdot-escape", "{media}/sub/../../secret.mp4", "outside the media roots"),
    ("relative-dotdot-escape", "../secret.mp4", "outside the media roots"),
    ("symlink-escape", "{media}/link.mp4", "outside the media roots"),
    ("file-url-etc-passwd", "file:///etc/passwd", "outside the media roots"),
    ("file-url-remote-host", "file://server/share/a.mp4", "only local files"),
    ("concat", "concat:{media}/sub/clip.mp4|/etc/passwd", "scheme concat: is not allowed"),
    ("subfile", "subfile:,,start,0,end,0,,:/etc/passwd", "scheme subfile: is not allowed"),
    ("data-url", "data:video/mp4;base64,AAAA", "scheme data: is not allowed"),
    ("gopher", "gopher://cam.example.com/1", "scheme gopher: is not allowed"),
    ("ftp", "ftp://cam.example.com/a.mp4", "scheme ftp: is not allowed"),
    ("udp", "udp://cam.example.com:5000", "scheme udp: is not allowed"),
    ("pipe", "pipe:0", "scheme pipe: is not allowed"),
    ("cloud-metadata", "http://169.254.169.254/latest/meta-data", "link-local"),
    ("metadata-by-name", "http://metadata.evil.example/latest/meta-data", "link-local"),
    ("metadata-decimal-ip", "http://2852039166/latest/meta-data", "link-local"),
    ("metadata-hex-ip", "http://0xa9fea9fe/", "link-local"),
    ("loopback-short-ip", "http://127.1/", "loopback"),
    ("metadata-v4-mapped-v6", "http://[::ffff:169.254.169.254]/", "link-local"),
    ("metadata-nat64", "http://[64:ff9b::a9fe:a9fe]/", r"link-local.*169\.254\.169\.254 inside an IPv6"),
    ("metadata-6to4", "http://[2002:a9fe:a9fe::]/", r"link-local.*169\.254\.169\.254 inside an IPv6"),
    ("metadata-v4-compatible", "http://[::169.254.169.254]/", r"link-local.*169\.254\.169\.254 inside an IPv6"),
    ("loopback-nat64", "http://[64:ff9b::7f00:1]/", r"loopback.*127\.0\.0\.1 inside an IPv6"),
    ("loopback-6to4", "http://[2002:7f00:1::]/", r"loopback.*127\.0\.0\.1 inside an IPv6"),
    ("loopback-v4-compatible", "http://[::127.0.0.1]/", r"loopback.*127\.0\.0\.1 inside an IPv6"),
    ("private-nat64", "rtsp://[64:ff9b::a00:7]/", "private-network"),
    ("link-local-v6", "rtsp://[fe80::1]/", "link-local"),
    ("loopback-untrusted", "http://127.0.0.1/", "loopback"),
    ("localhost-untrusted", "rtsp://0.0.0.0:554/", "loopback"),
    ("one-private-address-of-many", "rtsp://mixed.evil.example/live", "private-network"),
    ("unresolvable-host", "rtsp://nowhere.invalid/live", "cannot resolve host nowhere.invalid"),
    ("no-host", "rtsp:///live", "names no host"),
    ("bad-port", "rtsp://cam.example.com:99999/live", "invalid URL"),
    ("v4l2-not-a-camera", "v4l2:///etc/passwd", "camera device"),
    ("empty", "", "empty source"),
]


@pytest.mark.parametrize(("url", "reason"), [(u, r) for _, u, r in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_hostile_sources_are_refused_untrusted_with_the_reason(media, monkeypatch, url, reason):
    monkeypatch.chdir(media)
    url = url.format(media=media, tmp=media.parent)
    with pytest.raises(UrlRefused, match=reason) as caught:
        _check(url, IngestSettings(media_roots=[media]))
    assert isinstance(caught.value, SourceError)


ALWAYS_REFUSED = ["concat", "subfile", "data-url", "gopher", "ftp", "pipe", "cloud-metadata", "metadata-by-name"]
ALWAYS_REFUSED += ["metadata-decimal-ip", "metadata-v4-mapped-v6", "link-local-v6", "v4l2-not-a-camera"]
ALWAYS_REFUSED += ["metadata-nat64", "metadata-6to4", "metadata-v4-compatible"]


@pytest.mark.parametrize(("url", "reason"), [(u, r) for i, u, r in HOSTILE if i in ALWAYS_REFUSED], ids=ALWAYS_REFUSED)
def test_some_sources_are_refused_even_when_trusted(media, url, reason):
    with pytest.raises(UrlRefused, match=reason):
        _check(url.format(media=media, tmp=media.parent), trusted=True)


def test_api_files_are_refused_when_no_media_roots_are_configured(media):
    with pytest.raises(UrlRefused, match="no media_roots are configured"):
        _check(str(media / "sub" / "clip.mp4"))


def test_refusals_never_show_the_password():
    with pytest.raises(UrlRefused) as caught:
        _check("rtsp://admin:hunter2@169.254.1.1/live", trusted=True)
    assert "hunter2" not in str(caught.value) and "admin:***@169.254.1.1" in str(caught.value)
    assert _check("rtsp://admin:hunter2@cam.example.com/live").display == "rtsp://admin:***@cam.example.com/live"


def test_a_trusted_host_that_does_not_resolve_is_left_to_ffmpeg():
    assert _check("rtsp://nowhere.invalid/live", trusted=True).target == "rtsp://nowhere.invalid/live"


def test_host_lookup_gives_up_after_the_resolve_timeout(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(url_policy, "RESOLVE_TIMEOUT_S", 0.2)
    with pytest.raises(UrlRefused, match=r"cannot resolve host slow\.example \(no answer within 0\.2 s\)"):
        check_url("rtsp://slow.example/live", IngestSettings())


def test_default_resolver_checks_every_address(monkeypatch):
    def getaddrinfo(host, *args, **kwargs):
        assert host == "two.example"
        return [(socket.AF_INET, 1, 6, "", ("93.184.216.34", 0)), (socket.AF_INET, 1, 6, "", ("169.254.169.254", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(UrlRefused, match=r"two\.example \(169\.254\.169\.254\) is a link-local"):
        check_url("http://two.example/", IngestSettings())


# -- HLS playlists -------------------------------------------------------------------------------


PLAYLIST = """#EXTM3U
#EXT-X-TARGETDURATION:1
#EXT-X-KEY:METHOD=AES-128,URI="keys/k1.bin"
#EXTINF:1.0,
seg0.ts
#EXTINF:1.0,
/other/seg1.ts
#EXTINF:1.0,
https://cdn.example.com/seg2.ts
"""


def test_playlist_uris_lists_segments_and_attribute_uris():
    assert playlist_uris(PLAYLIST) == ["keys/k1.bin", "seg0.ts", "/other/seg1.ts", "https://cdn.example.com/seg2.ts"]


def test_a_playlist_of_http_segments_passes_with_absolute_urls():
    HOSTS["cdn.example.com"] = ["93.184.216.35"]
    playlist = _check("http://cam.example.com/live/index.m3u8")
    urls = check_playlist(PLAYLIST, playlist, IngestSettings(), resolve=_resolve)
    assert urls == [
        "http://cam.example.com/live/keys/k1.bin",
        "http://cam.example.com/live/seg0.ts",
        "http://cam.example.com/other/seg1.ts",
        "https://cdn.example.com/seg2.ts",
    ]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("file:///etc/passwd", "names file:///etc/passwd, but a playlist may name only http"),
        ("FILE:/etc/shadow.ts", "names FILE:/etc/shadow.ts, but a playlist may name only http"),
        ("concat:/a.ts|/b.ts", "may name only http"),
        ("http://169.254.169.254/latest/meta-data/x.ts", "link-local"),
        ("http://127.0.0.1:9000/x.ts", "loopback"),
        ('#EXT-X-MAP:URI="file:///etc/passwd"', "names file:///etc/passwd"),
        ("#EXT-X-MAP:URI=file:///etc/passwd", "names file:///etc/passwd"),
        ("#EXT-X-KEY:METHOD=AES-128,URI=http://169.254.169.254/key,IV=0x1", "link-local"),
        ("#EXT-X-KEY:METHOD=AES-128,uri=file:///etc/shadow", "names file:///etc/shadow"),
        ("http://[64:ff9b::a9fe:a9fe]/x.ts", "link-local"),
    ],
    ids=[
        "file-url",
        "file-scheme-upper",
        "concat",
        "metadata-host",
        "loopback-host",
        "map-uri",
        "map-uri-unquoted",
        "key-uri-unquoted",
        "key-uri-lower-case",
        "metadata-nat64",
    ],
)
def test_hostile_playlist_entries_are_refused(entry, reason):
    text = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{entry}\n"
    playlist = _check("http://cam.example.com/live/index.m3u8")
    with pytest.raises(UrlRefused, match=f"^refused HLS playlist http://cam.example.com/live/index.m3u8: .*{reason}"):
        check_playlist(text, playlist, IngestSettings(), resolve=_resolve)


def test_a_response_that_is_no_playlist_is_refused():
    playlist = _check("http://cam.example.com/live/index.m3u8")
    with pytest.raises(UrlRefused, match="not an HLS playlist"):
        check_playlist("<html>login</html>", playlist, IngestSettings(), resolve=_resolve)


MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI=audio/en.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000
low/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1000,URI="iframes.m3u8"
"""


def test_variant_uris_names_every_playlist_a_master_playlist_points_to():
    assert variant_uris(MASTER) == ["audio/en.m3u8", "low/index.m3u8", "iframes.m3u8"]
    playlist = _check("http://cam.example.com/live/master.m3u8")
    assert "http://cam.example.com/live/low/index.m3u8" in check_playlist(
        MASTER, playlist, IngestSettings(), resolve=_resolve
    )


@pytest.mark.parametrize(
    "variant",
    [
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/chunklist",
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.mp4",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="audio.txt"',
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=iframes",
    ],
    ids=["no-extension", "named-mp4", "rendition", "iframe-unquoted"],
)
def test_a_variant_playlist_that_would_not_be_checked_is_refused(variant):
    playlist = _check("http://cam.example.com/live/master.m3u8")
    with pytest.raises(UrlRefused, match="does not end in .m3u8, so it cannot be checked"):
        check_playlist(f"#EXTM3U\n{variant}\n", playlist, IngestSettings(), resolve=_resolve)


def test_a_playlist_is_recognised_by_its_content_not_its_name():
    assert is_playlist("#EXTM3U\n#EXTINF:1,\na.ts\n") and is_playlist(b"\xef\xbb\xbf#EXTM3U\n")
    assert is_playlist("\ufeff#EXTM3U") and not is_playlist(b"\x00\x00\x00\x18ftypmp42")
    assert not is_playlist("<html>#EXTM3U</html>")
