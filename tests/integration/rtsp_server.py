"""A loopback RTSP test server (Debian's gst-rtsp-server); run it with /usr/bin/python3, which has `gi`.

    /usr/bin/python3 tests/integration/rtsp_server.py [PORT] [--fps N] [--size WxH]

Serves a live H.264 test pattern at rtsp://127.0.0.1:PORT/cam (PORT 0 picks a free one) and
prints "port N" once it listens. A fixed PORT lets a restarted server come back where it was.
Mounts /cam0 ... /cam{streams-1} too with --streams N (one shared pipeline each).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", nargs="?", type=int, default=0)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--streams", type=int, default=0, help="also mount /cam0 .. /cam{N-1}")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    launch = (
        f"( videotestsrc is-live=true ! video/x-raw,width={width},height={height},framerate={args.fps}/1 ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} ! rtph264pay name=pay0 pt=96 )"
    )
    mounts = server.get_mount_points()
    for path in ["/cam", *(f"/cam{i}" for i in range(args.streams))]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("port", server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
