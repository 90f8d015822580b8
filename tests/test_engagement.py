"""Engagement recorded and reported: receipts and clicks (by message key, and without one),
inbox reads and clicks through the API, unsubscribes attributed to the last message with
their cost, and the report's funnel, arms, cost and ROI, each figure one the test made."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from journeys.ab import assign
from journeys.errors import NotFound
from journeys.plan.steps import AbSplitStep
from starter.client import Journeys
from starter.plan_files import read_plan
from starter.report import RunReport, run_report
from tests.conftest import serving_ingest, spawn_journeys
from tests.engine import settings_env
from tests.journey_runner import Advance, Check, JourneyKit, LiveRun, UntilShard

PUSH_COST, POPUP_COST, UNSUBSCRIBE_COST = 1.0, 0.5, 2.0
PLAN = {
    "steps": {
        "welcome": {"type": "send", "channel": "popup", "template": "hello", "next": "split"},
        "split": {
            "type": "ab_split",
            "arms": [
                {"name": "holdout", "weight": 30, "control": True},
                {"name": "offer", "weight": 70, "next": "push"},
            ],
        },
        "push": {"type": "send", "channel": "push", "template": "offer", "vars": {"offer": "10%"}},
    },
    "goal": {"event": "order_placed", "within": "1d", "value_prop": "amount"},
}


def with_engagement(journey: JourneyKit) -> None:
    """The kit's channels with prices and push's engagement events; a policy that prices
    unsubscribes."""
    path = journey.settings.channels_file
    channels: dict[str, Any] = yaml.safe_load(path.read_text())
    channels["channels"]["push"] |= {
        "cost": PUSH_COST,
        "engagement": {"delivered": "push_delivered", "clicked": "push_clicked"},
    }
    channels["channels"]["popup"]["cost"] = POPUP_COST
    priced = path.with_name("channels-priced.yaml")
    priced.write_text(yaml.safe_dump(channels))
    journey.settings = journey.settings.model_copy(update={"channels_file": priced})
    journey.use_policy(
        {"negative_events": [{"name": "unsubscribed", "cost": UNSUBSCRIBE_COST, "window": "1d"}]}
    )


async def test_engagement_is_attributed_and_reported(journey: JourneyKit) -> None:
    with_engagement(journey)
    tag = uuid.uuid4().hex[:6]
    users = [f"en-{tag}-{n:03d}" for n in range(60)]
    plan_file = journey.plan_file(PLAN)
    split = read_plan(plan_file, channels=None).steps["split"]
    assert isinstance(split, AbSplitStep)
    arm = {u: split.arms[assign(split.arms, salt=split.salt or "", user_id=u)].name for u in users}
    held = sorted(u for u in users if arm[u] == "holdout")
    offered = sorted(u for u in users if arm[u] == "offer")
    assert len(held) >= 8 and len(offered) >= 20
    keys: dict[tuple[str, str], str] = {}

    async def read_keys(live: LiveRun) -> None:
        rows = await journey.pool.fetch(
            "SELECT node_id, user_id, idempotency_key FROM deliveries WHERE run_id = $1",
            live.run_id,
        )
        keys.update({(r["node_id"], r["user_id"]): r["idempotency_key"] for r in rows})

    def push_event(name: str, user: str, *, key_of: str | None = None) -> dict[str, Any]:
        props = {} if key_of is None else {"message_id": keys[("push", key_of)]}
        return {"user_id": user, "name": name, "props": props}

    async def engage(_: LiveRun) -> None:
        events = [push_event("push_delivered", u, key_of=u) for u in offered[:20]]
        events += [push_event("push_clicked", u, key_of=u) for u in offered[:10]]
        events.append(push_event("push_clicked", offered[0], key_of=offered[0]))  # again
        events += [push_event("push_clicked", u) for u in offered[10:12]]  # no key: last push
        events.append(push_event("push_clicked", offered[15], key_of=offered[16]))  # not theirs
        events += [{"user_id": u, "name": "unsubscribed"} for u in (*offered[18:20], held[0])]
        events += [
            {"user_id": u, "name": "order_placed", "props": {"amount": 10}}
            for u in (*offered[:8], *held[:2])
        ]
        await journey.post(events)
        async with Journeys(journey.ingest_url or "") as app:
            first = {}
            for u in held[:5]:
                read = await app.inbox_read(keys[("welcome", u)], user_id=u)
                assert read.message_id == keys[("welcome", u)] and not read.clicked
                first[u] = read.read_at
            again = await app.inbox_read(keys[("welcome", held[0])], user_id=held[0])
            assert again.read_at == first[held[0]]  # the first read's time stays
            for u in (held[0], held[5]):  # one read before, one not
                assert (await app.inbox_click(keys[("welcome", u)], user_id=u)).clicked
            with pytest.raises(NotFound):  # another user's message is not marked
                await app.inbox_read(keys[("welcome", held[6])], user_id=held[7])
        async with httpx.AsyncClient(base_url=journey.ingest_url or "") as http:
            bad = await http.post("/v1/inbox/read", json={"user_id": "u", "message_id": 7})
            assert bad.status_code == 422

    async with serving_ingest(journey.settings) as ingest_url:
        journey.use_ingest(ingest_url)
        outcome = await journey.run(
            plan_file,
            users=users,
            skipping=False,
            script=[
                UntilShard(lambda s: s.counters.delivered == len(users) + len(offered)),
                Check(read_keys),
                Check(engage),
                UntilShard(lambda s: s.counters.converted == 10),
                Advance(timedelta(days=1, minutes=1)),  # the goal window closes
            ],
        )
    read_at = await journey.pool.fetchval(
        "SELECT count(*) FROM inbox WHERE user_id = ANY($1) AND read_at IS NOT NULL", users
    )
    assert read_at == 6  # five read, one more clicked unread

    client = await journey.client()
    costs = {"push": PUSH_COST, "popup": POPUP_COST}
    report = await run_report(journey.pool, client, outcome.run_id, costs=costs)
    push, welcome = report.nodes  # by name
    assert (welcome.node, welcome.sent, welcome.opened, welcome.clicked) == (
        "welcome", len(users), 6, 2,
    )  # fmt: skip
    assert (push.sent, push.receipts, push.clicked, push.opened) == (len(offered), 20, 12, 0)
    assert (push.negative, push.negative_value) == (2, 2 * UNSUBSCRIBE_COST)
    assert (welcome.negative, welcome.negative_value) == (1, UNSUBSCRIBE_COST)  # its last
    cost = len(users) * POPUP_COST + len(offered) * PUSH_COST
    assert (report.cost, report.value, report.negative_value) == (cost, 100.0, 6.0)
    assert report.roi == pytest.approx((100 - cost - 6) / cost)
    assert (report.clicked, report.opened, report.receipts) == (14, 6, 20)

    # an arm's messages are its own path's: the popup before the split is in neither
    holdout, offer = report.splits["split"]
    assert (holdout.messages, holdout.cost, holdout.clicked, holdout.negative) == (0, 0, 0, 0)
    assert holdout.roi is None  # it costs nothing
    assert (offer.messages, offer.clicked, offer.negative) == (len(offered), 12, 2)
    offer_cost = len(offered) * PUSH_COST
    assert offer.cost == offer_cost
    assert offer.roi == pytest.approx((80 - offer_cost - 2 * UNSUBSCRIBE_COST) / offer_cost)
    assert offer.incremental_value == pytest.approx(80 - 20 * len(offered) / len(held))
    assert holdout.incremental_value is None

    assert sum(p.conversions for p in report.timeline) == 10
    assert sum(p.value for p in report.timeline) == 100.0

    env = settings_env(journey.settings, channels=journey.settings.channels_file)
    png, page = journey.directory / "report.png", journey.directory / "report.html"
    proc = await spawn_journeys(
        "report", outcome.run_id, "--json", "--png", str(png), "--html", str(page), env=env
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert (got["cost"], got["clicked"], got["negative_value"]) == (cost, 14, 6.0)
    assert_charts(png, page, report)


def assert_charts(png: Path, page: Path, report: RunReport) -> None:
    """The PNG is a PNG that states its figures; the page opens offline and carries the
    same numbers (its tables, and the report as JSON)."""
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600
        shown = json.loads(image.info["Description"])
    assert shown["funnel"] == {
        "targeted": 60, "delivered": report.delivered, "opened": 6, "clicked": 14,
        "converted": 10,
    }  # fmt: skip
    offer = next(a for a in report.splits["split"] if a.arm == "offer")
    assert shown["arms"]["split/offer"] == [offer.rate, offer.ci_low, offer.ci_high]
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "data:image/png;base64," in text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", text)  # nothing from a network
    embedded = re.search(r'<script type="application/json" id="report">(.*?)</script>', text, re.S)
    assert embedded is not None
    assert json.loads(embedded.group(1))["roi"] == pytest.approx(report.roi)
    assert "arms of split" in text and f"{report.cost:,.2f}" in text
