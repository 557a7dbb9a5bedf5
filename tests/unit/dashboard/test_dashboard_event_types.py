"""The dashboard knows every event type the pipeline emits (issue 16: quality events were dropped).

The timeline draws a lane only for the types in util.js's EVENT_TYPES, the legend names them in
index.html and style.css gives each its colour; a type missing from any of them is invisible or grey.
"""

from __future__ import annotations

import re
from pathlib import Path

from dinostream.core.records import EVENT_TYPES

STATIC = Path(__file__).resolve().parents[3] / "dashboard" / "static"
SHOWN = [t for t in EVENT_TYPES if t != "error"]  # errors go to the stream's health, not the timeline


def test_every_event_type_has_a_timeline_lane_a_legend_entry_and_a_colour() -> None:
    util = (STATIC / "util.js").read_text()
    match = re.search(r"export const EVENT_TYPES = \[([^\]]*)\]", util)
    assert match, "util.js no longer declares EVENT_TYPES"
    lanes = re.findall(r'"([a-z_]+)"', match.group(1))
    html = (STATIC / "index.html").read_text()
    css = (STATIC / "style.css").read_text()
    for kind in SHOWN:
        assert kind in lanes, f"util.js EVENT_TYPES lacks {kind!r}"
        assert f'<li data-type="{kind}">' in html, f"the timeline legend lacks {kind!r}"
        assert f"--c-{kind}:" in css, f"style.css has no colour for {kind!r}"
        assert f'[data-type="{kind}"] {{ --c: var(--c-{kind}); }}' in css, f"style.css does not map {kind!r}"
