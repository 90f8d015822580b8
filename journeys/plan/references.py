"""Checks of a plan's channel and template names against the channels file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from journeys.channels_config import ChannelsFile
from journeys.errors import Problem
from journeys.plan.graph import step_path


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _channel_ref(channels: ChannelsFile, path: str, name: object) -> list[Problem]:
    if isinstance(name, str) and name not in channels.channels:
        return [Problem(path, f'unknown channel "{name}" (known: {_known(channels.channels)})')]
    return []


def channel_problems(document: Mapping[str, object], channels: ChannelsFile) -> list[Problem]:
    """Unknown channels, templates and judgement services, and webhooks through channels
    that are not http."""
    problems: list[Problem] = []
    steps = document.get("steps")
    for step_id, step in steps.items() if isinstance(steps, Mapping) else ():
        if not isinstance(step, Mapping) or step.get("type") not in ("send", "webhook"):
            continue
        prefix = step_path(step_id, step)
        name, template = step.get("channel"), step.get("template")
        problems.extend(_channel_ref(channels, f"{prefix}.channel", name))
        channel = channels.channels.get(name) if isinstance(name, str) else None
        if channel is None:
            continue
        if isinstance(template, str) and template not in channel.templates:
            known = _known(channel.templates)
            reason = f'unknown template "{template}" for channel "{name}" (known: {known})'
            problems.append(Problem(f"{prefix}.template", reason))
        if step.get("type") == "webhook" and channel.provider.kind != "http":
            reason = (
                f'channel "{name}" has provider kind {channel.provider.kind}; '
                "a webhook step needs an http channel"
            )
            problems.append(Problem(f"{prefix}.channel", reason))
    for step_id, step in steps.items() if isinstance(steps, Mapping) else ():
        if isinstance(step, Mapping) and step.get("type") == "check":
            service = step.get("service")
            if isinstance(service, str) and service not in channels.services:
                known = _known(channels.services)
                reason = f'unknown service "{service}" (the channels file\'s services: {known})'
                problems.append(Problem(f"{step_path(step_id, step)}.service", reason))
    limits = document.get("limits")
    for section in ("caps", "budget"):
        items = limits.get(section) if isinstance(limits, Mapping) else None
        for index, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, Mapping):
                path = f"limits.{section}.{index}.channel"
                problems.extend(_channel_ref(channels, path, item.get("channel")))
    return problems
