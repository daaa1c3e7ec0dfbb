"""The control surface, ``/_fake/…``: faults, ledger, events, counters, reset.

No key is needed and nothing here is faulted: it is a test tool on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from egress.errors import ConfigurationError
from egress.testing.fake_stripe._core import Core
from egress.testing.fake_stripe._errors import StripeApiError
from egress.testing.fake_stripe._faults import CHAOS_PROFILES, FaultRule, parse_fault, parse_rules

__all__ = ["Control"]


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=2))


class Control:
    def __init__(self, core: Core, reset: Callable[[], None]) -> None:
        self.core = core
        self._reset = reset

    async def health(self, _request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def get_faults(self, _request: web.Request) -> web.Response:
        plan = self.core.faults
        return _json({"rules": [str(r) for r in plan.rules], "pending": plan.pending(),
                      "injected": dict(plan.injected)})

    async def post_faults(self, request: web.Request) -> web.Response:
        plan = self.core.faults
        try:
            if request.content_type == "application/json":
                data = await request.json()
                if not isinstance(data, dict):
                    raise ConfigurationError("expected a JSON object")
                rules = _rules_from_json(data)
                if data.get("replace"):
                    plan.clear()
                if "seed" in data:
                    plan.reseed(data["seed"])
            else:
                rules = parse_rules(await request.text())
        except (ConfigurationError, ValueError, TypeError, KeyError) as exc:
            return _json({"error": {"type": "invalid_request_error", "message": str(exc)}}, 400)
        plan.add(*rules)
        return await self.get_faults(request)

    async def delete_faults(self, request: web.Request) -> web.Response:
        self.core.faults.clear()
        return await self.get_faults(request)

    async def ledger(self, _request: web.Request) -> web.Response:
        ledger = self.core.state.ledger
        return _json({
            "charges": [_charge_json(asdict(c)) for c in ledger.charges],
            "refunds": [asdict(r) for r in ledger.refunds],
            "summary": ledger.summary(),
            "double_charges": {ref: [c.id for c in charges]
                               for ref, charges in ledger.double_charges().items()},
        })

    async def events(self, _request: web.Request) -> web.Response:
        with self.core.state.lock:
            events = list(self.core.state.events)
        return _json({"data": events})

    async def stats(self, _request: web.Request) -> web.Response:
        counters = self.core.counter_snapshot()
        return _json({"counters": counters, "faults_injected": dict(self.core.faults.injected)})

    async def reset(self, _request: web.Request) -> web.Response:
        self._reset()
        return _json({"ok": True})

    async def complete_action(self, request: web.Request) -> web.Response:
        succeed = request.query.get("succeed", "true") != "false"
        try:
            intent = self.core.state.complete_action(request.match_info["id"], succeed=succeed)
        except StripeApiError as exc:
            return _json(exc.body(), exc.status)
        events = self.core.state.take_events()
        if self.core.webhooks is not None and events:
            self.core.webhooks.submit(events)
        return _json(intent)


def _charge_json(data: dict[str, Any]) -> dict[str, Any]:
    data["metadata"] = dict(data["metadata"])
    return data


def _rules_from_json(data: dict[str, Any]) -> tuple[FaultRule, ...]:
    rules: list[FaultRule] = []
    if "chaos" in data:
        name = data["chaos"]
        if name not in CHAOS_PROFILES:
            raise ConfigurationError(f"unknown chaos profile {name!r}")
        rules.extend(CHAOS_PROFILES[name].rules)
    if "spec" in data:
        rules.extend(parse_rules(str(data["spec"])))
    for item in data.get("rules", []):
        rules.append(FaultRule(
            route=str(item.get("route", "*")),
            script=tuple(parse_fault(str(f)) for f in item.get("script", [])),
            mix=tuple((float(share), parse_fault(str(f))) for share, f in item.get("mix", [])),
            after=item.get("after"), until=item.get("until")))
    return tuple(rules)
