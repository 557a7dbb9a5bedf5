"""LiveHub: bounded per-client queues, dropping slow clients, recent events, latest per stream,
filters, cursors and resume."""

from __future__ import annotations

import asyncio
import json

import pytest

from dinostream.core.records import Event, RecordError, event_id
from dinostream.dashboard.live_hub import Filter, LiveHub, batch_message, batches, event_message


def make_event(
    stream: str = "cam1", key: int = 0, *, t: float = 1.0, score: float = 0.5, details: dict | None = None
) -> Event:
    return Event(
        id=event_id(stream, "scene_change", key),
        type="scene_change",
        stream=stream,
        t=t,
        t_start=t,
        t_end=t,
        ts=1_700_000_000.0 + t,
        score=score,
        frames=(key, key + 1),
        details=details or {},
    )


async def take(sub, n: int) -> list[dict]:
    return [json.loads(await asyncio.wait_for(sub.get(), 1)) for _ in range(n)]


async def test_queue_is_bounded_and_overflow_drops_only_the_slow_client() -> None:
    hub = LiveHub(queue_size=3)
    slow = hub.subscribe("slow")
    fast = hub.subscribe("fast")
    for k in range(3):
        hub.publish_event(make_event(key=k))
        assert [m["event"]["frames"][0] for m in await take(fast, 1)] == [k]
    assert slow.pending == 3 and not slow.dropped and hub.dropped_clients == 0

    hub.publish_event(make_event(key=3))  # the 4th message does not fit: slow is dropped, not blocked

    assert slow.dropped and slow.pending == 3  # bounded: the 4th message never entered its queue
    assert hub.dropped_clients == 1 and hub.clients == 1
    await asyncio.wait_for(slow.wait_dropped(), 1)
    assert not fast.dropped
    assert [m["event"]["frames"][0] for m in await take(fast, 1)] == [3]

    hub.publish_event(make_event(key=4))  # a dropped client gets nothing more and is not counted twice
    assert slow.pending == 3 and hub.dropped_clients == 1
    assert hub.stats()["dropped_clients"] == 1 and hub.stats()["events"] == 5


async def test_every_overflowing_client_is_counted() -> None:
    hub = LiveHub(queue_size=1)
    subs = [hub.subscribe(f"c{i}") for i in range(3)]
    hub.publish_frame("cam1", 0, 0.0, b"\xff\xd8a", model="m", untrained=False)
    hub.publish_frame("cam1", 1, 0.5, b"\xff\xd8b", model="m", untrained=False)
    assert all(s.dropped for s in subs)
    assert hub.dropped_clients == 3 and hub.clients == 0


async def test_get_many_takes_everything_queued_oldest_first_without_replayed_duplicates() -> None:
    hub = LiveHub(queue_size=8)
    hub.start_positions({0: 10})
    sub = hub.subscribe(resume_from="0:3")  # replayed from the log up to offset 11, see `replayed`
    for off in (10, 11, 12):
        hub.publish_event(make_event(key=off), partition=0, offset=off)
    hub.publish_frame("cam1", 5, 2.5, b"", model="m", untrained=False)
    hub.publish_event(make_event(key=13), partition=0, offset=13)
    sub.replayed({0: 12})
    got = [json.loads(t) for t in await asyncio.wait_for(sub.get_many(), 1)]
    assert [m.get("event", m)["frames" if m["kind"] == "event" else "seq"] for m in got] == [[12, 13], 5, [13, 14]]
    assert sub.pending == 0

    waiting = asyncio.ensure_future(sub.get_many())  # nothing queued: waits for the next publish
    await asyncio.sleep(0)
    assert not waiting.done()
    hub.publish_event(make_event(key=14), partition=0, offset=14)
    assert [json.loads(t)["cursor"] for t in await asyncio.wait_for(waiting, 1)] == ["0:15"]

    for off in (15, 16):  # only duplicates of the replay queued: keeps waiting for a wanted one
        hub.publish_event(make_event(key=off), partition=0, offset=off)
    sub.replayed({0: 17})
    waiting = asyncio.ensure_future(sub.get_many())
    await asyncio.sleep(0)
    assert not waiting.done() and sub.pending == 0
    hub.publish_event(make_event(key=17), partition=0, offset=17)
    assert [json.loads(t)["cursor"] for t in await asyncio.wait_for(waiting, 1)] == ["0:18"]


def test_batches_join_runs_in_order_up_to_the_size_limit() -> None:
    texts = ['{"n":1}', '{"n":2}', '{"n":3}', '{"big":"' + "x" * 40 + '"}', '{"n":5}']
    assert list(batches(texts[:1], 100)) == [(texts[0], 1)]  # a lone message goes unchanged
    assert list(batches([], 100)) == []
    assert list(batches(texts, 1000)) == [(batch_message(texts), 5)]
    split = list(batches(texts, 30))  # three small ones fit in 30 characters, the big one goes alone
    assert split == [(batch_message(texts[:3]), 3), (texts[3], 1), (texts[4], 1)]
    unpacked = []
    for text, n in split:
        msg = json.loads(text)
        inner = msg["messages"] if msg.get("kind") == "batch" else [msg]
        assert len(inner) == n
        unpacked += inner
    assert unpacked == [json.loads(t) for t in texts]


def test_latest_thumbnail_and_info_per_stream() -> None:
    hub = LiveHub(queue_size=8)
    hub.publish_frame("cam1", 0, 0.0, b"\xff\xd8one", model="dinov3-s", untrained=False)
    hub.publish_frame("cam2", 7, 3.5, b"\xff\xd8two", model="random:vits16", untrained=True)
    hub.publish_frame("cam1", 1, 0.5, b"\xff\xd8three", model="dinov3-s", untrained=False)
    hub.publish_frame("cam1", 2, 1.0, b"", model="dinov3-s", untrained=False)  # no picture: keep the last one
    hub.publish_event(make_event("cam2", 7, t=3.5))

    streams = hub.streams()
    assert list(streams) == ["cam1", "cam2"]
    assert streams["cam1"]["seq"] == 2 and streams["cam1"]["t"] == 1.0 and streams["cam1"]["frames"] == 3
    assert streams["cam1"]["untrained"] is False and streams["cam1"]["last_event_ts"] is None
    assert streams["cam2"] == {
        "stream": "cam2",
        "seq": 7,
        "t": 3.5,
        "frames": 1,
        "model": "random:vits16",
        "untrained": True,
        "thumbnail_url": "/api/v1/streams/cam2/thumbnail.jpg?seq=7",
        "last_event_t": 3.5,
        "last_event_ts": 1_700_000_003.5,
    }
    assert hub.latest_thumbnail("cam1") == b"\xff\xd8three"
    assert hub.latest_thumbnail("cam2") == b"\xff\xd8two"
    assert hub.latest_thumbnail("cam3") is None
    assert hub.untrained is True


def test_event_for_a_stream_without_frames_creates_its_info() -> None:
    hub = LiveHub(queue_size=8)
    hub.publish_event(make_event("cam9", 3, t=12.0))
    info = hub.streams()["cam9"]
    assert info["seq"] is None and info["frames"] == 0 and info["thumbnail_url"] is None
    assert info["last_event_t"] == 12.0
    assert hub.untrained is False


async def test_frame_notice_is_light_json_with_a_cache_busting_url() -> None:
    hub = LiveHub(queue_size=8)
    with hub.subscribe() as sub:
        big = b"\xff\xd8" + b"x" * 50_000
        hub.publish_frame("cam1", 41, 20.5, big, model="m", untrained=True)
        hub.publish_frame("cam1", 42, 21.0, big, model="m", untrained=True)
        texts = [await asyncio.wait_for(sub.get(), 1) for _ in range(2)]
    assert all(len(t) < 400 for t in texts)  # no image bytes in the notice
    first, second = (json.loads(t) for t in texts)
    assert first == {
        "kind": "frame",
        "stream": "cam1",
        "seq": 41,
        "t": 20.5,
        "thumbnail_url": "/api/v1/streams/cam1/thumbnail.jpg?seq=41",
        "model": "m",
        "untrained": True,
    }
    assert second["thumbnail_url"] != first["thumbnail_url"]
    assert hub.clients == 0  # the context manager unsubscribed


def test_new_subscriber_starts_with_hello_then_recent_events_oldest_first() -> None:
    hub = LiveHub(queue_size=8, recent=3)
    hub.publish_frame("cam1", 0, 0.0, b"\xff\xd8", model="m", untrained=False)
    for k in range(5):
        hub.publish_event(make_event(key=k, t=float(k)))
    sub = hub.subscribe()
    hello, *recent = (json.loads(t) for t in sub.initial)
    assert hello["kind"] == "hello" and list(hello["streams"]) == ["cam1"]
    assert [m["event"]["t"] for m in recent] == [2.0, 3.0, 4.0]  # bounded ring, oldest first
    assert sub.pending == 0  # the backlog is not in the bounded live queue


def test_an_update_replaces_the_recent_event_with_the_same_id() -> None:
    hub = LiveHub(queue_size=8, recent=10)
    hub.publish_event(make_event(key=1, score=0.2))
    hub.publish_event(make_event(key=2, score=0.3))
    hub.publish_event(make_event(key=1, score=0.9))  # same id: an update of the first occurrence
    recent = [json.loads(t)["event"] for t in hub.subscribe().initial[1:]]
    assert [(e["frames"][0], e["score"]) for e in recent] == [(2, 0.3), (1, 0.9)]


def test_event_details_that_are_not_json_are_rejected_without_side_effects() -> None:
    hub = LiveHub(queue_size=8)
    sub = hub.subscribe()
    with pytest.raises(RecordError, match="not plain JSON"):
        hub.publish_event(make_event(details={"distance": float("nan")}))
    assert sub.pending == 0 and hub.streams() == {} and len(hub.subscribe().initial) == 1


def test_an_event_message_is_the_events_json_in_its_envelope_byte_for_byte() -> None:
    """The text clients get is unchanged: the envelope around `Event.to_json()`, as one JSON text."""
    event = make_event(details={"label": 'caf\u00e9 "entr\u00e9e"', "distance": 0.25})
    hub = LiveHub(queue_size=8)
    hub.publish_event(event, partition=0, offset=4)
    text = hub.subscribe().initial[1]
    envelope = {"kind": "event", "cursor": "0:5", "event": event.to_dict()}
    assert text == json.dumps(envelope, separators=(",", ":"), allow_nan=False)
    assert event_message(event, "0:5") == text


def test_unsubscribe_is_idempotent_and_stops_delivery() -> None:
    hub = LiveHub(queue_size=8)
    sub = hub.subscribe()
    sub.close()
    sub.close()
    hub.publish_event(make_event())
    assert sub.pending == 0 and hub.clients == 0 and hub.dropped_clients == 0


@pytest.mark.parametrize("bad", [{"queue_size": 0}, {"queue_size": 4, "recent": -1}], ids=["no-queue", "neg-recent"])
def test_limits_are_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        LiveHub(**bad)


def test_invalid_stream_id_is_rejected() -> None:
    hub = LiveHub(queue_size=8)
    with pytest.raises(RecordError):
        hub.publish_frame("../etc", 0, 0.0, b"\xff\xd8", model="m", untrained=False)
    assert hub.streams() == {}


# ---------- cursors, filters, resume ----------


def test_every_event_message_carries_the_cursor_after_it() -> None:
    hub = LiveHub(queue_size=8)
    hub.start_positions({0: 40, 1: 7})
    hub.publish_event(make_event("cam1", 1), partition=1, offset=7)
    hub.skip(0, 40)  # a malformed record still moves the position
    hub.publish_event(make_event("cam2", 2), partition=0, offset=41)
    cursors = [json.loads(t)["cursor"] for t in hub.subscribe().initial[1:]]
    assert cursors == ["0:40,1:8", "0:42,1:8"]
    assert hub.positions == {0: 42, 1: 8}


def test_filter_selects_events_by_stream_type_and_score_and_frames_by_stream() -> None:
    f = Filter.from_request({"streams": ["cam1"], "types": ["anomaly"], "min_score": 0.5})
    assert f.accepts("cam1", "anomaly", 0.5)
    assert not f.accepts("cam1", "anomaly", 0.49)
    assert not f.accepts("cam1", "scene_change", 0.9)
    assert not f.accepts("cam2", "anomaly", 0.9)
    assert f.accepts("cam1", None, None) and not f.accepts("cam2", None, None)  # frame notices
    assert Filter.from_request({}).everything


@pytest.mark.parametrize(
    ("req", "problem"),
    [
        ({"streams": "cam1"}, "streams must be a list"),
        ({"types": ["nope"]}, "unknown event type 'nope'"),
        ({"min_score": float("nan")}, "finite number"),
        ({"min_score": True}, "finite number"),
    ],
    ids=["streams-not-list", "unknown-type", "nan-score", "bool-score"],
)
def test_bad_filters_are_rejected(req: dict, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        Filter.from_request(req)


async def test_resume_from_memory_sends_only_what_came_after_the_cursor_filtered() -> None:
    hub = LiveHub(queue_size=8, recent=1)
    events = [make_event(f"cam{k % 2}", k) for k in range(6)]
    for e in events[:3]:
        hub.publish_event(e)
    cursor = json.loads(hub.subscribe().initial[-1])["cursor"]  # after events[2]
    for e in events[3:]:
        hub.publish_event(e)
    sub = hub.subscribe("r", Filter(streams=frozenset({"cam1"})), resume_from=cursor)
    assert sub.replay_plan is None
    assert [json.loads(t)["event"]["frames"][0] for t in sub.initial[1:]] == [3, 5]  # cam1 only, in order
    hub.publish_event(make_event("cam0", 6))  # filtered out of the live queue too
    hub.publish_event(make_event("cam1", 7))
    assert sub.pending == 1 and [m["event"]["frames"][0] for m in await take(sub, 1)] == [7]


def test_resume_from_before_memory_asks_for_a_replay_up_to_the_live_position() -> None:
    hub = LiveHub(queue_size=8, resume_memory=2)
    hub.start_positions({0: 100, 1: 50})
    hub.publish_event(make_event(key=1), partition=0, offset=100)
    hub.publish_event(make_event(key=2), partition=1, offset=50)
    hub.publish_event(make_event(key=3), partition=0, offset=101)  # evicts offset 100 of partition 0
    in_memory = hub.subscribe(resume_from="0:101,1:50")
    assert in_memory.replay_plan is None and len(in_memory.initial) == 3
    older = hub.subscribe(resume_from="0:100,1:50")
    assert older.replay_plan is not None and older.initial == [hub.hello()]
    assert dict(older.replay_plan.start.positions) == {0: 100, 1: 50}
    assert older.replay_plan.until == {0: 102, 1: 51}


async def test_live_duplicates_of_replayed_events_are_skipped() -> None:
    hub = LiveHub(queue_size=8)
    hub.start_positions({0: 10})
    sub = hub.subscribe(resume_from="0:3")  # before the hub started: replay from the log
    assert sub.replay_plan is not None
    for off in (10, 11, 12):
        hub.publish_event(make_event(key=off), partition=0, offset=off)
    sub.replayed({0: 12})  # the log replay already went up to offset 11
    assert [m["event"]["frames"][0] for m in await take(sub, 1)] == [12]
    assert sub.pending == 0


def test_unknown_event_id_gives_a_resume_gap_then_recent() -> None:
    hub = LiveHub(queue_size=8, recent=5)
    hub.publish_event(e := make_event(key=1))
    kinds = [json.loads(t)["kind"] for t in hub.subscribe(resume_from="not-an-event").initial]
    assert kinds == ["hello", "resume_gap", "event"]
    assert len(hub.subscribe(resume_from=e.id).initial) == 1  # known id, nothing after it
    assert hub.stats()["resume_gaps"] == 1 and hub.stats()["resumes"] == 2
