"""The ingest API under hostile and careless input: every case gets a 4xx that names the
event, field and reason, nothing of a refused batch is stored, and the document it
publishes holds (schemathesis, every check, against the live server)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from activities.db.pool import DbPool
from journeys.settings import Settings
from tests.conftest import serving_ingest


async def stored(pool: DbPool, user: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user)
    return n


def hostile_events(user: str) -> list[tuple[str, str, str]]:
    """(raw JSON of one event, the field the refusal must name, a word of its reason)."""

    def nested(depth: int) -> str:
        return '{"a":' * depth + "1" + "}" * depth

    return [
        (f'{{"user_id":"{user}","name":"x","props":{{"a":"\\u0000"}}}}', "props.a", "NUL"),
        (f'{{"user_id":"{user}","name":"x","props":{{"\\u0000":1}}}}', "props.<key>", "NUL"),
        ('{"user_id":"u\\u0000","name":"x"}', "user_id", "control"),
        (f'{{"user_id":"{user}","name":"x","event_id":"e\\u0000"}}', "event_id", "control"),
        (f'{{"user_id":"{user}","name":"x","props":{{"a":NaN}}}}', "props.a", "finite"),
        (f'{{"user_id":"{user}","name":"x","props":{{"a":Infinity}}}}', "props.a", "finite"),
        (f'{{"user_id":"{user}","name":"x","props":{{"a":[1e400]}}}}', "props.a.0", "finite"),
        (f'{{"user_id":"{user}","name":"x","props":{{"a":"\\ud800"}}}}', "props.a", "surrogate"),
        ('{"user_id":"\\ud800","name":"x"}', "user_id", "unicode"),
        ('{"user_id":"u","name":"\\ud800"}', "name", "event name"),
        (f'{{"user_id":"{user}","name":"x","ts":"0001-01-01T00:00:00+05:00"}}', "ts", "1970"),
        (f'{{"user_id":"{user}","name":"x","ts":"9999-12-31T23:59:59-05:00"}}', "ts", "1970"),
        (f'{{"user_id":"{user}","name":"x","ts":0}}', "ts", "ISO 8601"),
        (f'{{"user_id":"{user}","name":"x","ts":"2026-06-01 09:00:00+08:00"}}', "ts", "ISO"),
        # the default limit is 8 levels; parsing itself gives up far deeper than that
        (f'{{"user_id":"{user}","name":"x","props":{nested(20)}}}', "props" + ".a" * 8, "8"),
        (f'{{"user_id":"{user}","name":"x","props":{nested(5_000)}}}', "body", "nested"),
    ]


async def test_hostile_events_get_4xx_naming_event_field_and_reason(
    ingest_url: str, pool: DbPool
) -> None:
    user = f"h-{uuid.uuid4().hex[:8]}"
    good = f'{{"user_id":"{user}","name":"x","ts":"2026-06-01T09:00:00+08:00"}}'
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30) as http:
        for raw, field, word in hostile_events(user):
            answer = await http.post(
                "/v1/events",
                content=f'{{"events":[{good},{raw}]}}'.encode("utf-8", "surrogatepass"),
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 422, (raw[:80], answer.text[:300])
            errors = answer.json()["errors"]
            index = -1 if field == "body" else 1
            assert [(e["index"], e["field"]) for e in errors] == [(index, field)], raw[:80]
            assert word.lower() in errors[0]["reason"].lower(), (raw[:80], errors)
        # an unknown field named by a lone surrogate: the answer is ASCII JSON, not a 500
        answer = await http.post("/v1/events", content=b'{"events":[],"\\ud800":1}')
        assert answer.status_code == 422 and answer.json()["errors"][0]["reason"] == "unknown field"
        # a flood of bad events gets the first 100 problems and a count, not a bigger answer
        flood = ",".join([f'{{"user_id":"{user}","name":"x","ts":0}}'] * 1_000)
        answer = await http.post("/v1/events", content=f'{{"events":[{flood}]}}'.encode())
        errors = answer.json()["errors"]
        assert answer.status_code == 422 and len(errors) == 101
        assert errors[-1] == {
            "index": -1,
            "field": "events",
            "reason": "1 more problems not listed",
        }
        assert await stored(pool, user) == 0  # one bad event refuses the batch whole
        answer = await http.post("/v1/events", content=f'{{"events":[{good}]}}'.encode())
        assert answer.status_code == 202 and await stored(pool, user) == 1


@pytest.fixture
async def small_body_ingest(stack_settings: Settings) -> AsyncIterator[str]:
    """The ingest API with a 64 KiB body limit."""
    settings = stack_settings.model_copy(update={"ingest_max_body_bytes": 64 * 1024})
    async with serving_ingest(settings) as url:
        yield url


async def test_a_body_over_the_configured_limit_is_refused_with_413(
    small_body_ingest: str, pool: DbPool
) -> None:
    user = f"b-{uuid.uuid4().hex[:8]}"
    event = f'{{"user_id":"{user}","name":"x","props":{{"n":"{"y" * 1000}"}}}}'
    body = ('{"events":[' + ",".join([event] * 80) + "]}").encode()
    assert len(body) > 64 * 1024

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    async with httpx.AsyncClient(base_url=small_body_ingest, timeout=30) as http:
        declared = await http.post("/v1/events", content=body)
        streamed = await http.post("/v1/events", content=chunked())
        fits = await http.post("/v1/events", content=body[: body.index(b"},{") + 1] + b"]}")
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text[:200]
        [error] = answer.json()["errors"]
        assert error["field"] == "body" and str(64 * 1024) in error["reason"]
    assert fits.status_code == 202 and await stored(pool, user) == 1


async def test_the_ingest_api_holds_to_its_openapi_document(
    ingest_url: str, tmp_path: Path
) -> None:
    """schemathesis generates valid and invalid requests from ``/openapi.json`` and checks
    every answer: no 5xx, every status, content type and body as documented, valid data
    accepted, invalid data refused. Seeded and bounded, so it is the same run every time.
    Every operation in the document is tested, so a new endpoint joins by being documented."""
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{ingest_url}/openapi.json",
        "--checks=all",
        "--mode=all",
        "--phases=examples,coverage,fuzzing",
        "--max-examples=30",
        "--seed=20261201",
        "--workers=1",
        "--request-timeout=10",
        "--generation-database=none",
        "--no-color",
        "--report=json",
        f"--report-json-path={tmp_path / 'report.json'}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        async with asyncio.timeout(240):  # about 30 s here; a hang must not hold the suite
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failures"] == [] and report["errors"] == [], text[-6000:]
    # the body was reached: valid events generated from the document were stored
    assert report["valid_rates"]["POST /v1/events"]["fuzzing"]["accepted"] > 0
