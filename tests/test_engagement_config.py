"""The engagement map from a channels file and a policy, the checks of both new sections,
and the ROI arithmetic."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.engagement import EngagementMap, EngagementRule
from journeys.channels_config import check_channels
from journeys.policy import check_policy
from journeys.roi import incremental_value, roi


def _channel(engagement: dict[str, object] | None = None) -> dict[str, object]:
    body: dict[str, object] = {"type": "push", "provider": {"kind": "log"}}
    if engagement is not None:
        body["engagement"] = engagement
    return body


def test_the_map_joins_channels_sharing_an_event_and_adds_negative_events() -> None:
    channels, problems = check_channels(
        {
            "channels": {
                "push": _channel({"clicked": "tapped", "delivered": "push_delivered"}),
                "push_vip": _channel({"clicked": "tapped", "key": "msg", "window": "2d"}),
                "plain": _channel(),
            }
        }
    )
    assert problems == []
    policy, problems = check_policy(
        {"negative_events": [{"name": "unsubscribed", "cost": 2.5, "window": "1d"}]}
    )
    assert problems == []
    rules = EngagementMap.of(channels, policy).rules
    assert rules["push_delivered"] == [
        EngagementRule("delivered", ("push",), "message_id", timedelta(days=3))
    ]
    assert rules["tapped"] == [
        EngagementRule("clicked", ("push",), "message_id", timedelta(days=3)),
        EngagementRule("clicked", ("push_vip",), "msg", timedelta(days=2)),
    ]
    assert rules["unsubscribed"] == [
        EngagementRule("negative", None, "message_id", timedelta(days=1), 2.5)
    ]
    assert EngagementMap.of(None, None).rules == {}


def test_engagement_and_negative_events_are_checked_with_paths() -> None:
    _, problems = check_channels(
        {"channels": {"push": _channel({"clicked": "tapped", "window": "200d", "seen": "x"})}}
    )
    paths = {p.path for p in problems}
    assert {"channels.push.engagement.window", "channels.push.engagement.seen"} <= paths
    _, problems = check_policy({"negative_events": [{"name": "unsubscribed", "cost": -1}]})
    assert [(p.path, p.reason) for p in problems] == [
        ("negative_events.0.cost", "must be at least 0.0")
    ]
    _, problems = check_policy(
        {"negative_events": [{"name": "unsubscribed"}, {"name": "unsubscribed"}]}
    )
    assert [(p.path, p.reason) for p in problems] == [
        ("negative_events.1.name", "a second entry for this event")
    ]


def test_roi_and_incremental_value() -> None:
    assert roi(value=150, cost=50, negative=10) == pytest.approx(1.8)
    assert roi(value=150, cost=0, negative=0) is None  # free messages have no ROI
    assert incremental_value(value=80, users=40, control_value=10, control_users=20) == 60
    assert incremental_value(value=80, users=40, control_value=10, control_users=0) is None
