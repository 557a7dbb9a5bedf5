"""Which events alert which targets: rule matching, cooldown and dedup. Pure: no I/O, no asyncio.

    rules = AlertRules(settings.rules, dedup_size=100_000, dedup_ttl_s=86_400)
    for rule, target in rules.match(event, now=time.time()):
        ...

A rule matches an event by type, stream, minimum score and status (default: only "open", so an
occurrence alerts once, not on each update). Its cooldown is per (rule, stream, type) and
measured on the events' capture wall-clock time `ts`: replaying a backlog gives the same
decisions as live, and streams whose media time restarts (looped files) are not confused. The
cooldown decides per occurrence (event id): the later messages of an occurrence that alerted
still alert (e.g. "closed" when the rule asks for it), those of one that was held back do not.

Kafka delivers at least once, so the same message may come twice (a rebalance, a restart of
the consumer before its commit). A delivery, (event id, status, target) plus `t_end` for
"update" messages, is remembered in a bounded LRU with a TTL, and a repeat is not returned.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from dinostream.core.records import Event
from dinostream.core.settings import AlertRuleSettings

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlLru(Generic[K, V]):
    """A mapping bounded in size (least recently inserted goes first) whose entries expire after `ttl`.

    Times are whatever clock the caller passes as `now` (seconds)."""

    def __init__(self, max_size: int, ttl: float) -> None:
        if max_size < 1 or ttl <= 0:
            raise ValueError(f"need max_size >= 1 and ttl > 0, got {max_size}, {ttl}")
        self.max_size = max_size
        self.ttl = ttl
        self._d: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: K, now: float) -> V | None:
        item = self._d.get(key)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def put(self, key: K, value: V, now: float) -> None:
        self._d[key] = (now + self.ttl, value)
        self._d.move_to_end(key)
        while self._d:
            oldest_key, (expires, _) = next(iter(self._d.items()))
            if len(self._d) > self.max_size or expires <= now:
                del self._d[oldest_key]
            else:
                break


@dataclass
class AlertRulesStats:
    matched: int = 0  # (rule, target) pairs returned
    duplicates: int = 0  # deliveries already returned before (redelivered messages)
    cooled_down: int = 0  # occurrences held back by a rule's cooldown


class AlertRules:
    """Evaluates rules against events; see the module docstring for the semantics."""

    def __init__(self, rules: Sequence[AlertRuleSettings], *, dedup_size: int = 100_000, dedup_ttl_s: float = 86_400):
        self.rules = list(rules)
        self.stats = AlertRulesStats()
        self._seen: TtlLru[tuple[str, str, float | None, str], bool] = TtlLru(dedup_size, dedup_ttl_s)
        # (rule, event id) -> did this occurrence pass the rule's cooldown
        self._decided: TtlLru[tuple[str, str], bool] = TtlLru(dedup_size, dedup_ttl_s)
        # (rule, stream, type) -> ts of the last occurrence that alerted
        self._last: TtlLru[tuple[str, str, str], float] = TtlLru(dedup_size, dedup_ttl_s)

    @staticmethod
    def selects(rule: AlertRuleSettings, event: Event) -> bool:
        """The rule's filters alone (type, stream, score, status), without cooldown or dedup."""
        return (
            (not rule.types or event.type in rule.types)
            and (not rule.streams or event.stream in rule.streams)
            and event.score >= rule.min_score
            and event.status in rule.statuses
        )

    def match(self, event: Event, now: float) -> list[tuple[AlertRuleSettings, str]]:
        """(rule, target name) pairs to alert for `event`; each target at most once per delivery.

        `now` (wall-clock seconds) only ages the dedup memory."""
        out: list[tuple[AlertRuleSettings, str]] = []
        update_key = event.t_end if event.status == "update" else None
        for rule in self.rules:
            if not self.selects(rule, event) or not self._passes_cooldown(rule, event, now):
                continue
            for target in rule.targets:
                key = (event.id, event.status, update_key, target)
                if self._seen.get(key, now):
                    self.stats.duplicates += 1
                    continue
                self._seen.put(key, True, now)
                out.append((rule, target))
        self.stats.matched += len(out)
        return out

    def _passes_cooldown(self, rule: AlertRuleSettings, event: Event, now: float) -> bool:
        if rule.cooldown_s <= 0:
            return True
        decided = self._decided.get((rule.name, event.id), now)
        if decided is not None:
            return decided
        key = (rule.name, event.stream, event.type)
        last = self._last.get(key, now)
        ok = last is None or abs(event.ts - last) >= rule.cooldown_s
        if ok:
            self._last.put(key, event.ts, now)
        else:
            self.stats.cooled_down += 1
        self._decided.put((rule.name, event.id), ok, now)
        return ok
