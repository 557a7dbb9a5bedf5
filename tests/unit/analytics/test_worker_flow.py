"""The worker's Faust app keeps records its agents have not read when a running flow is resumed.

Faust's table recovery resumes the flow at several steps after a rebalance, the last after seeking
to the committed offsets; a resume clears every agent buffer. Records fetched between two resumes
were cleared by the later one while the fetcher's read offset had moved past them, so they were
never analysed (seen as a killed worker's successor skipping frames, `test_faults.py`). The real
sequence is timing-dependent; this checks the rule that closes it on the app's own flow control.
"""

from __future__ import annotations

from pathlib import Path

from dinostream.analytics.worker import build_app
from dinostream.core.settings import AnalyticsSettings, KafkaSettings


async def test_a_running_flow_keeps_its_buffers_on_resume_and_a_suspended_one_clears_them(tmp_path: Path) -> None:
    app = build_app("127.0.0.1:9", KafkaSettings(), AnalyticsSettings(), processors=lambda s: [], datadir=tmp_path)
    buffer = app.FlowControlQueue(maxsize=8, clear_on_resume=True)  # as Faust makes a stream's and a topic's
    assert not app.flow_control.is_active()  # Faust starts it suspended
    app.flow_control.resume()  # recovery's first resume: the flow starts
    buffer.put_nowait("fetched after the first seek")
    app.flow_control.resume()  # a later one, the flow running
    assert buffer.qsize() == 1 and app.flow_control.is_active()

    app.flow_control.suspend()  # a rebalance starts: what was fetched before it is fetched again after it
    app.flow_control.resume()
    assert buffer.qsize() == 0 and app.flow_control.is_active()
