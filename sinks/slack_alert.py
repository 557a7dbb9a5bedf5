"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): `{"text", "blocks"}`.

The text is one readable line, e.g.
    anomaly on cam-1 (open): score 2.41 at 2025-01-31 12:00:05 UTC · rule intrusion
with a link to the dashboard when `AlertSettings.dashboard_url` is set. Unsigned: these
endpoints authenticate by their secret URL. Retries and dead-lettering as for webhooks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dinostream.sinks.alert_sink import Alert, links
from dinostream.sinks.webhook_alert import HttpAlertSink


def alert_line(alert: Alert) -> str:
    """One line a person reads: type, stream, status, score, capture time, rule."""
    ev = alert.event
    when = datetime.fromtimestamp(ev.ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{ev.type} on {ev.stream} ({ev.status}): score {ev.score:.2f} at {when} · rule {alert.rule}"


def slack_payload(alert: Alert, dashboard_url: str | None = None) -> dict[str, Any]:
    """The incoming-webhook JSON: `text` (notifications, fallbacks) and the same as Block Kit blocks."""
    line = alert_line(alert)
    text = line
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{line}*"}}]
    if dashboard_url:
        url = links(alert.event, dashboard_url)["dashboard"]
        text = f"{line} <{url}|open dashboard>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{url}|Open in the dashboard>"}]})
    return {"text": text, "blocks": blocks}


class SlackAlertSink(HttpAlertSink):
    """POSTs `slack_payload` to a Slack-compatible incoming webhook URL."""

    def request(self, alert: Alert, attempt: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(slack_payload(alert, self.dashboard_url), separators=(",", ":")).encode()
        return body, {"Content-Type": "application/json"}
