"""``journeys decisions ...`` (scenes, instance drafts, versions) and ``journeys decide``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from activities.db import decision_store, tag_store
from activities.db.pool import DbPool
from activities.decisions import DecisionService
from journeys.decisions.check import instance_problems, instance_tags, scene_problems
from journeys.decisions.contracts import DecideAnswer, DecideRequest, FieldValue
from journeys.decisions.model import Instance, Scene, load_decision_file
from journeys.durations import parse_duration
from journeys.errors import DecisionRefused, JourneysError
from journeys.settings import get_settings

from .connect import database, on_database, redis_client
from .console import out, print_json
from .decision_report import decision_report, report_tables

decisions_app = typer.Typer(
    name="decisions",
    help="The decision engine: scenes, instance drafts and versions (publish, roll back).",
    no_args_is_help=True,
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


@decisions_app.command()
def validate(file: Path = typer.Argument(..., help="A scene or instance file.")) -> None:
    """Check a file against its scene and the tag registry, storing nothing."""
    model = load_decision_file(file)

    async def check(pool: DbPool) -> None:
        if isinstance(model, Scene):
            problems = scene_problems(model)
        else:
            scene = await decision_store.scene(pool, model.scene)
            found = await tag_store.registry(pool, instance_tags(model))
            problems = instance_problems(model, scene, found)
        if problems:
            raise DecisionRefused(str(file), problems)

    on_database(check)
    out.print(f"{file}: valid")


@decisions_app.command()
def scene(file: Path = typer.Argument(..., help="A scene file.")) -> None:
    """Define a scene, or replace it (refused if an instance of it would no longer pass)."""
    model = load_decision_file(file)
    if not isinstance(model, Scene):
        raise JourneysError(f"{file} is an instance file; use journeys decisions draft")
    on_database(lambda pool: decision_store.define_scene(pool, model))
    out.print(f"scene {model.scene} defined")


@decisions_app.command()
def draft(file: Path = typer.Argument(..., help="An instance file.")) -> None:
    """Save an instance file as its draft (one draft per instance: this one replaces it)."""
    instance = _instance_file(file)
    on_database(lambda pool: decision_store.save_draft(pool, instance))
    out.print(f"instance {instance.instance}: draft saved (journeys decisions publish to go live)")


@decisions_app.command()
def publish(
    target: str = typer.Argument(..., help="An instance id (its draft), or an instance file."),
    note: str | None = typer.Option(None, help="Why, for the versions list."),
) -> None:
    """Publish an instance's draft as its next version, which goes live at once."""
    path = Path(target)
    instance_id = target
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        instance = _instance_file(path)
        instance_id = instance.instance

    async def go(pool: DbPool) -> decision_store.InstanceVersion:
        if instance_id != target:
            await decision_store.save_draft(pool, instance)
        return await decision_store.publish(pool, instance_id, note=note)

    version = on_database(go)
    if version.created:
        out.print(f"instance {instance_id}: published version {version.version} (live)")
    else:
        out.print(f"instance {instance_id}: unchanged, version {version.version} stays live")


@decisions_app.command()
def versions(instance: str = typer.Argument(...), as_json: bool = _JSON) -> None:
    """An instance's versions, oldest first; the newest is live."""
    found = on_database(lambda pool: decision_store.versions(pool, instance))
    if as_json:
        print_json([v.model_dump(mode="json", exclude={"created"}) for v in found])
        return
    table = Table("version", "published", "checksum", "note")
    for v in found:
        live = " (live)" if v is found[-1] else ""
        table.add_row(f"{v.version}{live}", f"{v.published_at:%Y-%m-%d %H:%M:%S}",
                      v.checksum[:12], v.note or "")  # fmt: skip
    out.print(table)


@decisions_app.command()
def rollback(
    instance: str = typer.Argument(...),
    to: int = typer.Option(..., "--to", help="The version to make live again."),
) -> None:
    """Make an earlier version live again, as a new version."""
    version = on_database(lambda pool: decision_store.rollback(pool, instance, to=to))
    out.print(f"instance {instance}: version {version.version} (= v{to}) is live")


@decisions_app.command()
def report(
    instance: str = typer.Argument(...),
    since: str = typer.Option("7d", help="How far back: decisions made since (a duration)."),
    window: str = typer.Option("7d", help="How long after a decision a metric event counts."),
    as_json: bool = _JSON,
) -> None:
    """Decisions per strategy and group, and the scene's metrics per group with the lift
    of each test group against the control."""
    start = datetime.now(UTC) - parse_duration(since)
    found = on_database(lambda pool: decision_report(pool, instance, since=start,
                                              window=parse_duration(window)))  # fmt: skip
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    out.print(report_tables(found))


def _instance_file(path: Path) -> Instance:
    model = load_decision_file(path)
    if not isinstance(model, Instance):
        raise JourneysError(f"{path} is a scene file; use journeys decisions scene")
    return model


def _field(text: str) -> tuple[str, FieldValue]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise JourneysError(f"--field {text!r}: write name=value")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # not JSON: a text
    if not isinstance(value, str | int | float | bool) and value is not None:
        value = raw
    return name, value


def decide_command(
    instance: str = typer.Argument(..., help="The instance id."),
    user: str | None = typer.Option(None, "--user", help="The user id."),
    item: str | None = typer.Option(None, "--item", help="The item id (sku)."),
    order: str | None = typer.Option(None, "--order", help="The order id."),
    fields: list[str] = typer.Option([], "--field", help="A pass-through field, name=value."),
    explain: bool = typer.Option(False, "--explain", help="Show each rule's evaluation."),
    as_json: bool = _JSON,
) -> None:
    """Ask an instance for its decision, as POST /v1/decide does (and recorded like it)."""
    request = DecideRequest(
        instance=instance, user_id=user, item_id=item, order_id=order,
        fields=dict(_field(f) for f in fields), explain=explain,
    )  # fmt: skip

    async def go() -> DecideAnswer:
        settings = get_settings()
        async with database(settings) as pool, redis_client(settings) as redis:
            service = DecisionService(pool=pool, redis=redis)
            answer = await service.decide(request)
            await service.recorder.flush()
            return answer

    answer = asyncio.run(go())
    if as_json:
        print_json(answer.model_dump(mode="json", exclude={"explain"} if not explain else set()))
        return
    where = f"strategy {answer.strategy}" if answer.strategy else "the default"
    group = f", group {answer.group}" if answer.group else ""
    out.print(f"{json.dumps(answer.decision)}  ({where}{group}; version {answer.version})")
    for strategy in answer.explain or []:
        out.print(f"  {strategy.strategy}: {'holds' if strategy.holds else 'does not hold'}")
        for c in strategy.conditions:
            out.print(f"    {c.tag} {c.op} {json.dumps(c.operand)}: value {json.dumps(c.value)}"
                      f" -> {'true' if c.holds else 'false'}")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``journeys decisions ...`` and ``journeys decide``."""
    app.add_typer(decisions_app)
    app.command("decide")(decide_command)
