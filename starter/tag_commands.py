"""``journeys tags``: define, test, publish, disable and look up registry tags."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from activities.catalog import catalog_values
from activities.db import tag_store
from activities.tags.values import computed_values
from journeys.errors import InvalidInput, JourneysError, Problem
from journeys.tags.check import RegisteredTag
from journeys.tags.fit import value_problem
from journeys.tags.model import FieldSource, load_tags_file

from .connect import on_database
from .console import out, print_json

tags_app = typer.Typer(
    name="tags",
    help="The tag registry: typed user attributes that rules read (draft, published, disabled).",
    no_args_is_help=True,
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


@tags_app.command()
def define(
    file: Path = typer.Argument(..., help="A YAML tags file (`tags:` name -> definition)."),
    as_json: bool = _JSON,
) -> None:
    """Store each tag of FILE as a draft (new tags, or edits of published ones)."""
    tags = load_tags_file(file)
    done: list[tag_store.Defined] = on_database(lambda pool: tag_store.define(pool, tags))
    if as_json:
        print_json([{"name": d.name, "outcome": d.outcome} for d in done])
        return
    for item in done:
        out.print(f"  {escape(item.name):<24} {item.outcome}")
    drafted = [d.name for d in done if d.outcome != "unchanged"]
    if drafted:
        out.print("next: journeys tags test TAG --user USER, then journeys tags publish TAG")


@tags_app.command("list")
def list_tags(as_json: bool = _JSON) -> None:
    """Every tag: state, type, source, live version, and whether a draft is pending."""
    found: list[tag_store.TagRecord] = on_database(tag_store.records)
    if as_json:
        print_json([_record_json(r) for r in found])
        return
    table = Table("tag", "state", "type", "source", "live", "draft")
    for rec in found:
        shown = rec.tag.live or rec.tag.draft
        assert shown is not None  # a row always has a draft or a live definition
        pending = "-" if rec.tag.draft is None else ("tested" if rec.draft_tested_at else "yes")
        live = f"v{rec.tag.live_version}" if rec.tag.live is not None else "-"
        table.add_row(rec.tag.name, rec.tag.state, shown.type, _source(shown), live, pending)
    out.print(table)


@tags_app.command()
def show(tag: str = typer.Argument(..., help="The tag name."), as_json: bool = _JSON) -> None:
    """One tag's live definition and pending draft."""
    rec: tag_store.TagRecord = on_database(lambda pool: tag_store.record(pool, tag))
    if as_json:
        print_json(_record_json(rec))
        return
    out.print(f"tag [bold]{escape(tag)}[/] ({rec.tag.state})")
    for label, definition in (("live", rec.tag.live), ("draft", rec.tag.draft)):
        if definition is not None:
            body = definition.model_dump(mode="json", exclude_none=True)
            out.print(f"  {label:<6} {escape(json.dumps(body, ensure_ascii=False))}")


@tags_app.command()
def test(
    tag: str = typer.Argument(..., help="The tag name."),
    user: str | None = typer.Option(None, "--user", help="The user whose value to show."),
    item: str | None = typer.Option(None, "--item", help="The item, for an item tag."),
    order: str | None = typer.Option(None, "--order", help="The order, for an order tag."),
    context: str | None = typer.Option(
        None, "--context", help="Pass-through fields as a JSON object, as a caller gives them."
    ),
    live: bool = typer.Option(False, "--live", help="Test the live definition, not the draft."),
    as_json: bool = _JSON,
) -> None:
    """Show the value of TAG for a user (an item, an order; the draft's when one is pending;
    this counts as its test)."""
    given = _context(context)

    async def work(pool: Any) -> tuple[str, Any, str | None]:
        rec = await tag_store.record(pool, tag)
        which = "live" if live or rec.tag.draft is None else "draft"
        definition = rec.tag.live if which == "live" else rec.tag.draft
        assert definition is not None  # a row always has one or the other
        whose = definition.whose
        key = {"user": user, "item": item, "order": order}.get(whose)
        if whose != "custom" and key is None:
            raise JourneysError(f"tag {tag} is a {whose} tag: give --{whose}")
        if isinstance(definition.source, FieldSource):
            value = given.get(definition.source.field)
        elif whose == "item" or whose == "order":
            assert key is not None
            found = {tag: RegisteredTag(tag, rec.tag.state, definition, rec.tag.live_version)}
            value = (await catalog_values(pool, whose, [key], found))[key][tag]
        else:
            assert key is not None
            now = datetime.now(UTC)
            value = (await computed_values(pool, tag, definition, [key], now=now)).get(key)
        problem = None if value is None else value_problem(definition, value)
        if which == "draft" and problem is None:  # a value that does not fit fails the test
            await tag_store.mark_tested(pool, tag, draft=definition)
        return which, value, problem

    which, value, problem = on_database(work)
    if as_json:
        ids = {k: v for k, v in (("item", item), ("order", order)) if v is not None}
        print_json({"tag": tag, "user": user, **ids, "tested": which, "value": value,
                    "problem": problem})  # fmt: skip
        return
    shown = "no value" if value is None else json.dumps(value, ensure_ascii=False)
    whom = user or item or order or "the given fields"
    out.print(f"{escape(tag)} ({which}) for {escape(whom)}: {escape(shown)}")
    if problem is not None:
        out.print(f"  [yellow]! {escape(problem)}[/]")


@tags_app.command()
def publish(tag: str = typer.Argument(..., help="The tag name."), as_json: bool = _JSON) -> None:
    """Make TAG's tested draft its live definition."""
    version: int = on_database(lambda pool: tag_store.publish(pool, tag))
    if as_json:
        print_json({"tag": tag, "version": version})
        return
    out.print(f"[green]published[/] {escape(tag)} v{version}")


@tags_app.command()
def disable(tag: str = typer.Argument(..., help="The tag name.")) -> None:
    """Refuse TAG to new rules; plan versions already using it keep working."""
    on_database(lambda pool: tag_store.set_state(pool, tag, "disabled"))
    out.print(f"disabled {escape(tag)}; `journeys tags usage {escape(tag)}` lists who reads it")


@tags_app.command()
def enable(tag: str = typer.Argument(..., help="The tag name.")) -> None:
    """Let new rules use a disabled TAG again."""
    on_database(lambda pool: tag_store.set_state(pool, tag, "published"))
    out.print(f"enabled {escape(tag)}")


@tags_app.command()
def usage(tag: str = typer.Argument(..., help="The tag name."), as_json: bool = _JSON) -> None:
    """The plan versions whose rules read TAG."""

    async def work(pool: Any) -> list[tag_store.Usage]:
        await tag_store.record(pool, tag)  # NotFound for a tag the registry lacks
        return await tag_store.usage(pool, tag)

    found: list[tag_store.Usage] = on_database(work)
    if as_json:
        print_json([{"plan": u.plan_id, "version": u.version, "newest": u.newest} for u in found])
        return
    if not found:
        out.print(f"no plan version reads {escape(tag)}")
    for item in found:
        newest = " (newest)" if item.newest else ""
        out.print(f"  {escape(item.plan_id)} v{item.version}{newest}")


def _context(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput("--context", [Problem("", f"not JSON: {exc.msg}")]) from None
    if not isinstance(given, dict):
        raise InvalidInput("--context", [Problem("", "must be a JSON object")])
    return given


def _source(definition: Any) -> str:
    source = definition.source
    if source is None:
        return "attribute"
    return ", ".join(
        f"{k}={v}" for k, v in source.model_dump(mode="json", exclude_none=True).items()
    )


def _record_json(rec: tag_store.TagRecord) -> dict[str, Any]:
    def body(definition: Any) -> Any:
        return None if definition is None else definition.model_dump(mode="json", exclude_none=True)

    return {
        "name": rec.tag.name,
        "state": rec.tag.state,
        "live_version": rec.tag.live_version,
        "live": body(rec.tag.live),
        "draft": body(rec.tag.draft),
        "draft_tested_at": rec.draft_tested_at,
        "updated_at": rec.updated_at,
    }


def register(app: typer.Typer) -> None:
    """Add the ``tags`` command group to ``app``."""
    app.add_typer(tags_app)
