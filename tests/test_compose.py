"""The production-like stack, checked without a Docker engine.

docker-compose.yml, the Dockerfile, .dockerignore and docs/deployment.md must agree with each
other and with the code: pinned images, a health check on every long-running service, a start
order that waits for health, Journeys services configured only by names that
journeys/settings.py reads and pointing at services that exist, search attributes matching
journeys/names.py, a worker that can scale, every published port documented.

Each check is a function that returns a list of problems (empty when all is well). The tests
run every check on the real files, then on deliberately broken copies to prove that each one
can fail.
"""

from __future__ import annotations

import copy
import http.server
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from journeys.names import SEARCH_ATTRIBUTES
from journeys.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
DEPLOYMENT_DOC_PATH = ROOT / "docs" / "deployment.md"

APP_SERVICES = ("worker", "ingest")
APP_COMMANDS = {"worker": ["journeys", "worker"], "ingest": ["journeys", "serve"]}
SETUP_SERVICE = "temporal-setup"
REQUIRED_CONNECTION_VARS = ("TEMPORAL_ADDRESS", "REDIS_URL", "DATABASE_URL")
EXAMPLES_MOUNT = "/app/examples"
WAITING_CONDITIONS = {"service_healthy", "service_completed_successfully"}
TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets", "include"}
# A pinned tag names at least major.minor; "16", "7" or "latest" move under your feet.
VERSION_IN_TAG = re.compile(r"\d+\.\d+")

Compose = dict[str, Any]
Service = dict[str, Any]
Problems = list[str]


# --- reading the files ----------------------------------------------------------------------


def load_compose(text: str) -> Compose:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services_of(compose: Compose) -> dict[str, Service]:
    services = compose.get("services")
    return services if isinstance(services, dict) else {}


def environment_of(service: Service) -> dict[str, str | None]:
    """A service's `environment`, in either of compose's two spellings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [str(item).partition("=") for item in env]
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def depends_on_of(service: Service) -> dict[str, Any]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # the short form: no condition at all
        return {str(name): None for name in deps}
    return dict(deps)


def parse_port(entry: object) -> tuple[str | None, int | None, int]:
    """(host ip, host port or None, container port) of one `ports` entry."""
    if isinstance(entry, dict):
        published = entry.get("published")
        return (
            entry.get("host_ip"),
            None if published is None else int(published),
            int(entry["target"]),
        )
    if not isinstance(entry, str):
        raise ValueError(f"{entry!r}: quote port mappings (YAML reads 22:22 as a number)")
    spec = entry.split("/", 1)[0]
    host_ip: str | None = None
    if spec.startswith("["):
        end = spec.index("]")
        host_ip, spec = spec[1:end], spec[end + 2 :]
    parts = spec.split(":")
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    elif len(parts) == 1:
        published, target = "", parts[0]
    else:
        raise ValueError(f"{entry!r}: not a port mapping")
    return host_ip, int(published) if published else None, int(target)


def published_ports(service: Service) -> list[tuple[str | None, int | None, int]]:
    """The service's parseable port mappings (check_port_syntax reports the others)."""
    mappings = []
    for entry in service.get("ports") or []:
        try:
            mappings.append(parse_port(entry))
        except (ValueError, KeyError):
            continue
    return mappings


def container_ports(service: Service) -> set[int]:
    """Ports the service listens on inside the network: `expose` and the targets of `ports`."""
    ports = {int(port) for port in service.get("expose") or []}
    return ports | {target for _, _, target in published_ports(service)}


def one_shot_services(compose: Compose) -> set[str]:
    """Services that others wait on to *finish* (setup jobs)."""
    return {
        name
        for service in services_of(compose).values()
        for name, dep in depends_on_of(service).items()
        if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
    }


def image_pin_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if "$" in image:
        return f"{image}: interpolated, so the version cannot be checked"
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return f"{image}: no tag (means latest)"
    if tag == "latest":
        return f"{image}: tag latest"
    if not VERSION_IN_TAG.search(tag):
        return f"{image}: tag {tag!r} floats; pin at least major.minor"
    return None


def markdown_section(text: str, title: str) -> str:
    """The body of the first heading that starts with `title`, up to the next heading at the
    same or a higher level (headings inside code fences do not count)."""
    body: list[str] = []
    level = 0
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else re.match(r"^(#+)\s+(.*)$", line)
        if heading and level and len(heading.group(1)) <= level:
            break
        if heading and not level and heading.group(2).lower().startswith(title.lower()):
            level = len(heading.group(1))
            continue
        if level:
            body.append(line)
    return "\n".join(body)


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of every table row (header included, separator rows left out)."""
    rows = []
    for line in markdown.splitlines():
        if not line.strip().startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue
        rows.append(cells)
    return rows


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def exec_form(args: str) -> list[str]:
    """The words of a CMD/COPY argument, in JSON (exec) form or shell form."""
    if args.startswith("["):
        words = json.loads(args)
        return [str(word) for word in words]
    return shlex.split(args)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over slash-separated paths."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def dockerignored(path: str, dockerignore: str) -> bool:
    """Whether .dockerignore keeps `path` (or a directory above it) out of the build context.
    As in Docker, the last matching pattern decides and `!` re-includes."""
    parts = path.strip("/").removeprefix("./").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for raw in dockerignore.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _glob_regex(line.removeprefix("!").strip().strip("/").removeprefix("./"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


class _FileOnlySettings(Settings):
    """Settings validated from given values only: the test process's environment stays out."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_aliases() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


# --- compose checks -------------------------------------------------------------------------


def check_top_level(compose: Compose) -> Problems:
    problems = [
        f"top-level key {key!r} is not a compose key (extensions start with x-)"
        for key in compose
        if key not in TOP_LEVEL_KEYS and not str(key).startswith("x-")
    ]
    if not services_of(compose):
        problems.append("no services")
    return problems


def check_port_syntax(compose: Compose) -> Problems:
    problems = []
    for name, service in services_of(compose).items():
        for entry in service.get("ports") or []:
            try:
                parse_port(entry)
            except (ValueError, KeyError) as exc:
                problems.append(f"{name}: ports: {exc}")
    return problems


def check_images(compose: Compose) -> Problems:
    problems = []
    for name, service in services_of(compose).items():
        image = service.get("image")
        if image is None:
            if "build" not in service:
                problems.append(f"{name}: neither image nor build")
            continue
        why = image_pin_problem(str(image))
        if why:
            problems.append(f"{name}: image {why}")
    return problems


def check_healthchecks(compose: Compose) -> Problems:
    problems = []
    one_shots = one_shot_services(compose)
    for name, service in services_of(compose).items():
        if name in one_shots:
            # `restart: no` unquoted is YAML false, which compose rejects: it must be "no".
            if service.get("restart") != "no":
                problems.append(f'{name}: a one-shot job needs restart: "no"')
            continue
        check = service.get("healthcheck")
        if not isinstance(check, dict) or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
            continue
        test = check.get("test")
        if isinstance(test, list):
            valid = len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL")
        else:
            valid = isinstance(test, str) and bool(test.strip())
        if not valid:
            problems.append(f"{name}: healthcheck test {test!r} runs nothing")
        elif isinstance(test, list) and test[1:3] == ["python", "-c"] and len(test) > 3:
            try:
                compile(str(test[3]), f"{name} healthcheck", "exec")
            except SyntaxError as exc:
                problems.append(f"{name}: healthcheck Python does not compile: {exc}")
    return problems


def check_depends_on(compose: Compose) -> Problems:
    problems = []
    services = services_of(compose)
    one_shots = one_shot_services(compose)
    for name, service in services.items():
        for target, dep in depends_on_of(service).items():
            if target not in services:
                problems.append(f"{name}: depends on unknown service {target!r}")
                continue
            condition = dep.get("condition") if isinstance(dep, dict) else None
            if condition not in WAITING_CONDITIONS:
                problems.append(
                    f"{name}: depends on {target} without a condition that waits "
                    f"({' or '.join(sorted(WAITING_CONDITIONS))})"
                )
            elif condition == "service_healthy" and target in one_shots:
                problems.append(f"{name}: waits for one-shot job {target} to be healthy")
            elif condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name}: waits for {target} to be healthy; it has no healthcheck")

    # No cycles: compose could never start them.
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in depends_on_of(services.get(node, {})):
            if state.get(target) == 1:
                problems.append("dependency cycle: " + " -> ".join([*path, node, target]))
            elif target in services and target not in state:
                visit(target, [*path, node])
        state[node] = 2

    for name in services:
        if name not in state:
            visit(name, [])
    return problems


def check_volumes(compose: Compose, root: Path) -> Problems:
    problems = []
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in services_of(compose).items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                source = str(volume.get("source", ""))
            else:
                source = str(volume).split(":", 1)[0] if ":" in str(volume) else ""
            if not source:
                continue  # an anonymous volume
            if source.startswith((".", "/", "~")):
                if source.startswith(".") and not (root / source).exists():
                    problems.append(f"{name}: bind-mount source {source} does not exist")
            elif source not in declared:
                problems.append(f"{name}: named volume {source!r} not declared under volumes:")
    return problems


def check_app_environment(compose: Compose) -> Problems:
    """Journeys services: configured only by Settings field aliases, with valid values."""
    problems = []
    aliases = settings_aliases()
    services = services_of(compose)
    for name in APP_SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"{name}: service missing")
            continue
        if "env_file" in service:
            problems.append(f"{name}: env_file hides settings from review; use environment:")
        env = environment_of(service)
        for key in sorted(set(env) - aliases):
            problems.append(f"{name}: {key} is not a setting (journeys/settings.py aliases)")
        for key in REQUIRED_CONNECTION_VARS:
            if not env.get(key):
                problems.append(f"{name}: {key} not set")
        given = {key: value for key, value in env.items() if key in aliases and value is not None}
        try:
            _FileOnlySettings.model_validate(given)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                problems.append(f"{name}: {where}: {error['msg']}")
    return problems


def _service_address_problems(
    compose: Compose, owner: str, key: str, url: str, image_prefix: str, schemes: tuple[str, ...]
) -> Problems:
    services = services_of(compose)
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        return [f"{owner}: {key}={url}: scheme should be one of {', '.join(schemes)}"]
    host, port = parts.hostname, parts.port
    target = services.get(host or "")
    if target is None:
        return [f"{owner}: {key}={url}: host {host!r} is not a service of this file"]
    problems = []
    if not str(target.get("image", "")).startswith(image_prefix):
        problems.append(f"{owner}: {key}={url}: {host} does not run {image_prefix}")
    if port is None:
        problems.append(f"{owner}: {key}={url}: give the port explicitly")
    elif port not in container_ports(target):
        problems.append(
            f"{owner}: {key}={url}: {host} listens on {sorted(container_ports(target))}, not {port}"
        )
    if host not in depends_on_of(services[owner]):
        problems.append(f"{owner}: uses {host} ({key}) but does not depend on it")
    return problems


def check_service_urls(compose: Compose) -> Problems:
    """Connection settings point at services of this file, on ports they listen on."""
    problems: Problems = []
    services = services_of(compose)
    for name in APP_SERVICES:
        if name not in services:
            continue
        env = environment_of(services[name])
        temporal = env.get("TEMPORAL_ADDRESS")
        if temporal:
            # No depends_on check here: they wait for Temporal through temporal-setup.
            problems += _temporal_address_problems(compose, name, temporal)
        redis_url = env.get("REDIS_URL")
        if redis_url:
            problems += _service_address_problems(
                compose, name, "REDIS_URL", redis_url, "redis:", ("redis", "rediss")
            )
        database_url = env.get("DATABASE_URL")
        if database_url:
            problems += _service_address_problems(
                compose, name, "DATABASE_URL", database_url, "postgres:", ("postgresql", "postgres")
            )
            problems += _database_credentials_problems(compose, name, database_url)
        ui_url = env.get("TEMPORAL_UI_URL")
        if ui_url:
            problems += _ui_url_problems(compose, name, ui_url)
    return problems


def _temporal_address_problems(compose: Compose, owner: str, address: str) -> Problems:
    services = services_of(compose)
    host, _, port = address.rpartition(":")
    target = services.get(host)
    if target is None:
        return [f"{owner}: TEMPORAL_ADDRESS={address}: host {host!r} is not a service of this file"]
    problems = []
    if not str(target.get("image", "")).startswith(
        ("temporalio/server:", "temporalio/auto-setup:")
    ):
        problems.append(f"{owner}: TEMPORAL_ADDRESS={address}: {host} is not a Temporal server")
    if not port.isdigit() or int(port) not in container_ports(target):
        problems.append(
            f"{owner}: TEMPORAL_ADDRESS={address}: {host} listens on "
            f"{sorted(container_ports(target))}, not {port or 'no port'}"
        )
    return problems


def _database_credentials_problems(compose: Compose, owner: str, url: str) -> Problems:
    parts = urlsplit(url)
    target = services_of(compose).get(parts.hostname or "")
    if target is None:
        return []
    env = environment_of(target)
    expected = {
        "user": (parts.username, env.get("POSTGRES_USER", "postgres")),
        "password": (parts.password, env.get("POSTGRES_PASSWORD")),
        "database": (
            parts.path.lstrip("/"),
            env.get("POSTGRES_DB") or env.get("POSTGRES_USER", "postgres"),
        ),
    }
    return [
        f"{owner}: DATABASE_URL {what} {got!r} but {parts.hostname} has {want!r}"
        for what, (got, want) in expected.items()
        if got != want
    ]


def _ui_url_problems(compose: Compose, owner: str, url: str) -> Problems:
    """TEMPORAL_UI_URL is a link for people on the host: a published port of the UI."""
    parts = urlsplit(url)
    ui_ports = {
        host_port
        for service in services_of(compose).values()
        if str(service.get("image", "")).startswith("temporalio/ui:")
        for _, host_port, _ in published_ports(service)
        if host_port is not None
    }
    if parts.hostname not in ("localhost", "127.0.0.1") or parts.port not in ui_ports:
        return [f"{owner}: TEMPORAL_UI_URL={url} is not the UI's published port {sorted(ui_ports)}"]
    return []


def check_app_services(compose: Compose, version: str) -> Problems:
    """One image built from this repo, tagged with the package version; the right commands;
    the examples mounted read-only where JOURNEYS_CHANNELS points."""
    problems = []
    services = services_of(compose)
    for name in APP_SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"{name}: service missing")
            continue
        build = service.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        if context != ".":
            problems.append(f"{name}: build context should be the repo root, got {context!r}")
        if service.get("image") != f"journeys:{version}":
            problems.append(
                f"{name}: image {service.get('image')!r}, expected journeys:{version} "
                "(the version in pyproject.toml)"
            )
        command = service.get("command")
        command = command if isinstance(command, list) else shlex.split(str(command or ""))
        if command != APP_COMMANDS[name]:
            problems.append(f"{name}: command {command}, expected {APP_COMMANDS[name]}")
        mounts = [str(volume) for volume in service.get("volumes") or []]
        if f"./examples:{EXAMPLES_MOUNT}:ro" not in mounts:
            problems.append(f"{name}: ./examples not mounted read-only at {EXAMPLES_MOUNT}")
        channels = environment_of(service).get("JOURNEYS_CHANNELS") or ""
        if not channels.startswith(EXAMPLES_MOUNT + "/"):
            problems.append(f"{name}: JOURNEYS_CHANNELS={channels!r} is not under {EXAMPLES_MOUNT}")
    return problems


def check_scalable_worker(compose: Compose) -> Problems:
    worker = services_of(compose).get("worker", {})
    problems = []
    if "container_name" in worker:
        problems.append("worker: container_name stops `--scale worker=N`")
    if worker.get("ports"):
        problems.append("worker: a published port stops `--scale worker=N`")
    return problems


def check_ingest_port(compose: Compose) -> Problems:
    ingest = services_of(compose).get("ingest", {})
    env = environment_of(ingest)
    port = env.get("JOURNEYS_INGEST_PORT")
    problems = []
    if env.get("JOURNEYS_INGEST_HOST") != "0.0.0.0":
        problems.append("ingest: JOURNEYS_INGEST_HOST must be 0.0.0.0 to be reachable")
    targets = {target for _, _, target in published_ports(ingest)}
    if port is None or not port.isdigit() or int(port) not in targets:
        problems.append(f"ingest: JOURNEYS_INGEST_PORT={port} is not a published port {targets}")
    return problems


def check_search_attributes(compose: Compose) -> Problems:
    """The setup job registers exactly journeys/names.py SEARCH_ATTRIBUTES, in the namespace
    and on the server the Journeys services use, and they wait for it."""
    services = services_of(compose)
    setup = services.get(SETUP_SERVICE)
    if setup is None:
        return [f"{SETUP_SERVICE}: service missing"]
    env = environment_of(setup)
    problems = []
    registered: dict[str, str] = {}
    for pair in (env.get("JOURNEYS_SEARCH_ATTRIBUTES") or "").split():
        attr_name, sep, attr_type = pair.partition("=")
        if not sep or attr_name in registered:
            problems.append(f"{SETUP_SERVICE}: bad or repeated entry {pair!r}")
        registered[attr_name] = attr_type
    for attr_name, attr_type in SEARCH_ATTRIBUTES.items():
        if attr_name not in registered:
            problems.append(f"{SETUP_SERVICE}: does not register {attr_name}")
        elif registered[attr_name] != attr_type:
            problems.append(
                f"{SETUP_SERVICE}: registers {attr_name} as {registered[attr_name]}, "
                f"journeys/names.py says {attr_type}"
            )
    for attr_name in sorted(set(registered) - set(SEARCH_ATTRIBUTES)):
        problems.append(f"{SETUP_SERVICE}: registers {attr_name}, unknown to journeys/names.py")
    if setup.get("restart") != "no":
        problems.append(f'{SETUP_SERVICE}: a one-shot job needs restart: "no"')
    temporal_host = (env.get("TEMPORAL_ADDRESS") or "").rpartition(":")[0]
    setup_waits = depends_on_of(setup).get(temporal_host)
    if not isinstance(setup_waits, dict) or setup_waits.get("condition") != "service_healthy":
        problems.append(f"{SETUP_SERVICE}: does not wait for {temporal_host or 'Temporal'} healthy")
    for name in APP_SERVICES:
        app_env = environment_of(services.get(name, {}))
        for key in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"):
            if app_env.get(key, "") != env.get(key):
                problems.append(
                    f"{name}: {key}={app_env.get(key)!r}, {SETUP_SERVICE} uses {env.get(key)!r}"
                )
        dep = depends_on_of(services.get(name, {})).get(SETUP_SERVICE)
        if not isinstance(dep, dict) or dep.get("condition") != "service_completed_successfully":
            problems.append(f"{name}: does not wait for {SETUP_SERVICE} to complete successfully")
    return problems


def check_mounted_scripts(compose: Compose, root: Path) -> Problems:
    """Scripts that one-shot jobs run from a bind mount exist in the repo, and every variable
    they require (`${NAME:?}`) is set on the service."""
    problems = []
    for name in sorted(one_shot_services(compose)):
        service = services_of(compose).get(name, {})
        mounts = {}
        for volume in service.get("volumes") or []:
            source, _, rest = str(volume).partition(":")
            mounts[rest.partition(":")[0]] = source
        words: list[str] = []
        for key in ("entrypoint", "command"):
            value = service.get(key) or []
            words += value if isinstance(value, list) else shlex.split(str(value))
        env = environment_of(service)
        for word in words:
            for target, source in mounts.items():
                if not word.startswith(target + "/") or not source.startswith("."):
                    continue
                script = root / source / word[len(target) + 1 :]
                if not script.is_file():
                    problems.append(f"{name}: runs {word}, but {script} does not exist")
                    continue
                for var in sorted(set(re.findall(r"\$\{(\w+):\?\}", script.read_text()))):
                    if var not in env:
                        problems.append(f"{name}: {script.name} requires {var}, not set")
    return problems


def check_ports_documented(compose: Compose, doc: str) -> Problems:
    """Every published host port is in the doc's ports table, and the table lists no other."""
    rows = table_rows(markdown_section(doc, "Ports"))
    if not rows:
        return ["docs/deployment.md: no table under a 'Ports' heading"]
    header = [cell.lower() for cell in rows[0]]
    column = next((i for i, cell in enumerate(header) if "host port" in cell), None)
    if column is None:
        return ["docs/deployment.md: the ports table has no 'host port' column"]
    documented = set()
    for row in rows[1:]:
        found = re.search(r"\d+", row[column]) if column < len(row) else None
        if found:
            documented.add(int(found.group()))
    published: dict[int, str] = {}
    problems = []
    for name, service in services_of(compose).items():
        for _, host_port, _ in published_ports(service):
            if host_port is None:
                problems.append(f"{name}: a port without a fixed host port is undocumentable")
            else:
                published[host_port] = name
    problems += [
        f"{name}: host port {port} missing from the ports table of docs/deployment.md"
        for port, name in sorted(published.items())
        if port not in documented
    ]
    problems += [
        f"docs/deployment.md: ports table lists {port}, which nothing publishes"
        for port in sorted(documented - set(published))
    ]
    return problems


def check_env_documented(compose: Compose, doc: str) -> Problems:
    rows = table_rows(markdown_section(doc, "Environment variables"))
    documented = {row[0].strip("`") for row in rows[1:] if row}
    problems = []
    for name in APP_SERVICES:
        for key in environment_of(services_of(compose).get(name, {})):
            if key not in documented:
                problems.append(f"{name}: {key} missing from the environment table of the docs")
    return problems


def check_images_documented(compose: Compose, doc: str) -> Problems:
    """The doc names the exact image of every service, so an upgrade cannot leave it stale."""
    return [
        f"{name}: image {service['image']} not named in docs/deployment.md"
        for name, service in services_of(compose).items()
        if "image" in service and f"`{service['image']}`" not in doc
    ]


# --- Dockerfile checks ----------------------------------------------------------------------


def check_dockerfile(text: str) -> Problems:
    instructions = dockerfile_instructions(text)
    problems = []
    bases = [
        next((word for word in args.split() if not word.startswith("--")), "")
        for kw, args in instructions
        if kw == "FROM"
    ]
    if not bases:
        problems.append("Dockerfile: no FROM")
    for base in bases:
        why = image_pin_problem(base)
        if why:
            problems.append(f"Dockerfile: base image {why}")
        elif not re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base):
            problems.append(f"Dockerfile: base {base}, expected python:3.11.N-slim")
    cmds = [exec_form(args) for kw, args in instructions if kw == "CMD"]
    if not cmds or cmds[-1] != ["journeys", "worker"]:
        problems.append(f"Dockerfile: CMD {cmds[-1] if cmds else None}, expected journeys worker")
    if [kw for kw, _ in instructions if kw == "ENTRYPOINT"]:
        problems.append("Dockerfile: an ENTRYPOINT would swallow the compose commands")
    users = [args for kw, args in instructions if kw == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("Dockerfile: runs as root (add a USER)")
    workdirs = [args for kw, args in instructions if kw == "WORKDIR"]
    if not workdirs or workdirs[-1] != "/app":
        problems.append("Dockerfile: WORKDIR should be /app (examples mount at /app/examples)")
    installs = [args for kw, args in instructions if kw == "RUN" and "pip install" in args]
    if not any(re.search(r"pip install \.(\s|$)", args) for args in installs):
        problems.append("Dockerfile: the project is not installed with `pip install .`")
    if any("[" in args for args in installs):
        problems.append("Dockerfile: pip installs extras; the image takes runtime deps only")
    aliases = settings_aliases()
    for kw, args in instructions:
        if kw != "ENV":
            continue
        for word in shlex.split(args):
            key = word.partition("=")[0]
            if key.startswith("JOURNEYS_") and key not in aliases:
                problems.append(f"Dockerfile: ENV {key} is not a setting")
    return problems


def copy_sources(text: str) -> list[str]:
    """Paths the Dockerfile copies from the build context (not from other stages)."""
    sources = []
    for keyword, args in dockerfile_instructions(text):
        if keyword not in ("COPY", "ADD"):
            continue
        flags = re.match(r"^(?:--\S+\s+)*", args)
        flag_text = flags.group() if flags else ""
        if "--from=" in flag_text:
            continue
        sources += exec_form(args[len(flag_text) :])[:-1]
    return sources


def check_copy_sources(text: str, root: Path, dockerignore: str) -> Problems:
    problems = []
    sources = copy_sources(text)
    if not sources:
        problems.append("Dockerfile: copies nothing")
    for source in sources:
        clean = source.rstrip("/") or "."
        if any(ch in clean for ch in "*?["):
            exists = any(root.glob(clean))
        else:
            exists = (root / clean).exists()
        if not exists:
            problems.append(f"Dockerfile: COPY {source}: {root / clean} does not exist")
        if dockerignored(clean, dockerignore):
            problems.append(f"Dockerfile: COPY {source}: excluded by .dockerignore")
    return problems


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose(COMPOSE_PATH.read_text())


@pytest.fixture(scope="module")
def doc() -> str:
    return DEPLOYMENT_DOC_PATH.read_text()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE_PATH.read_text()


@pytest.fixture(scope="module")
def dockerignore() -> str:
    return DOCKERIGNORE_PATH.read_text()


@pytest.fixture(scope="module")
def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def all_compose_problems(compose: Compose, doc: str, version: str) -> Problems:
    return [
        *check_top_level(compose),
        *check_images(compose),
        *check_port_syntax(compose),
        *check_healthchecks(compose),
        *check_depends_on(compose),
        *check_volumes(compose, ROOT),
        *check_app_environment(compose),
        *check_service_urls(compose),
        *check_app_services(compose, version),
        *check_scalable_worker(compose),
        *check_ingest_port(compose),
        *check_search_attributes(compose),
        *check_mounted_scripts(compose, ROOT),
        *check_ports_documented(compose, doc),
        *check_env_documented(compose, doc),
        *check_images_documented(compose, doc),
    ]


# --- the real files -------------------------------------------------------------------------


def test_compose_top_level(compose: Compose) -> None:
    assert check_top_level(compose) == []


def test_images_are_pinned(compose: Compose) -> None:
    assert check_images(compose) == []


def test_port_mappings_parse(compose: Compose) -> None:
    assert check_port_syntax(compose) == []


def test_every_long_running_service_has_a_healthcheck(compose: Compose) -> None:
    assert one_shot_services(compose) == {"temporal-schema", SETUP_SERVICE}
    assert check_healthchecks(compose) == []


def test_depends_on_waits_for_existing_services(compose: Compose) -> None:
    assert check_depends_on(compose) == []


def test_volumes_exist_or_are_declared(compose: Compose) -> None:
    assert check_volumes(compose, ROOT) == []


def test_app_environment_is_settings_aliases_only(compose: Compose) -> None:
    assert check_app_environment(compose) == []


def test_connection_urls_point_at_services_of_the_file(compose: Compose) -> None:
    assert check_service_urls(compose) == []


def test_app_services_image_command_and_examples(compose: Compose, version: str) -> None:
    assert check_app_services(compose, version) == []


def test_worker_can_scale(compose: Compose) -> None:
    assert check_scalable_worker(compose) == []


def test_ingest_listens_on_its_published_port(compose: Compose) -> None:
    assert check_ingest_port(compose) == []


def test_setup_job_registers_the_search_attributes(compose: Compose) -> None:
    assert check_search_attributes(compose) == []


def test_one_shot_scripts_exist_and_get_their_variables(compose: Compose) -> None:
    assert check_mounted_scripts(compose, ROOT) == []


def test_channels_file_exists(compose: Compose) -> None:
    for name in APP_SERVICES:
        channels = environment_of(services_of(compose)[name])["JOURNEYS_CHANNELS"] or ""
        in_repo = ROOT / "examples" / channels.removeprefix(EXAMPLES_MOUNT + "/")
        assert in_repo.is_file(), f"{name}: JOURNEYS_CHANNELS={channels}: {in_repo} is missing"


def test_published_ports_are_documented(compose: Compose, doc: str) -> None:
    assert check_ports_documented(compose, doc) == []


def test_app_environment_is_documented(compose: Compose, doc: str) -> None:
    assert check_env_documented(compose, doc) == []


def test_images_are_documented(compose: Compose, doc: str) -> None:
    assert check_images_documented(compose, doc) == []


def test_doc_shows_how_to_run_and_scale(doc: str) -> None:
    for command in ("docker compose up -d --build", "docker compose up -d --scale worker="):
        assert command in doc


def test_dockerfile(dockerfile: str) -> None:
    assert check_dockerfile(dockerfile) == []


def test_dockerfile_copies_the_package_and_its_data(dockerfile: str, dockerignore: str) -> None:
    copied = {source.rstrip("/") for source in copy_sources(dockerfile)}
    needed = {"journeys", "workflows", "activities", "starter", "worker.py", "migrations"}
    assert needed | {"pyproject.toml", "README.md"} <= copied
    # Paths written by other parts of the project: missing ones are named one by one.
    assert check_copy_sources(dockerfile, ROOT, dockerignore) == []


# --- the two Journeys health checks, run for real against loopback stand-ins ----------------


def _healthcheck_python(compose: Compose, service: str) -> str:
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    return str(test[3])


def _run_python(code: str, env: dict[str, str]) -> int:
    """Run a healthcheck's Python as the container would: from the repo root, the given
    environment only."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    return done.returncode


@contextmanager
def _http_server(status: int) -> Iterator[int]:
    """A loopback HTTP server answering every GET with `status`; yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _listeners(count: int) -> Iterator[list[int]]:
    """`count` loopback TCP listeners; yields their ports."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        yield [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_ingest_healthcheck_asks_healthz(compose: Compose, status: int, healthy: bool) -> None:
    code = _healthcheck_python(compose, "ingest")
    with _http_server(status) as port:
        result = _run_python(code, {"JOURNEYS_INGEST_PORT": str(port)})
    assert (result == 0) is healthy
    assert _run_python(code, {"JOURNEYS_INGEST_PORT": str(_free_port())}) != 0


def test_worker_healthcheck_reaches_every_service(compose: Compose) -> None:
    code = _healthcheck_python(compose, "worker")
    with _listeners(3) as (temporal, redis, postgres):
        env = {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
            "REDIS_URL": f"redis://127.0.0.1:{redis}/0",
            "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{postgres}/journeys",
        }
        assert _run_python(code, env) == 0
        for key, down in (
            ("TEMPORAL_ADDRESS", f"127.0.0.1:{_free_port()}"),
            ("REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0"),
            ("DATABASE_URL", f"postgresql://u:p@127.0.0.1:{_free_port()}/journeys"),
        ):
            assert _run_python(code, {**env, key: down}) != 0, key


# --- the checks catch broken files ----------------------------------------------------------


def _env(compose: Compose, service: str) -> dict[str, Any]:
    env: dict[str, Any] = compose["services"][service]["environment"]
    return env


def _service(compose: Compose, service: str) -> Service:
    found: Service = compose["services"][service]
    return found


BREAKAGES: list[tuple[str, Callable[[Compose], object], str]] = [
    ("latest", lambda c: _service(c, "redis").update(image="redis:latest"), "tag latest"),
    ("untagged", lambda c: _service(c, "temporal-ui").update(image="temporalio/ui"), "no tag"),
    ("floating", lambda c: _service(c, "postgres").update(image="postgres:16"), "floats"),
    ("no-healthcheck", lambda c: _service(c, "redis").pop("healthcheck"), "redis: no healthcheck"),
    (
        "healthcheck-none",
        lambda c: _service(c, "temporal").update(healthcheck={"test": ["NONE"]}),
        "runs nothing",
    ),
    (
        "healthcheck-python-syntax",
        lambda c: _service(c, "worker")["healthcheck"]["test"].__setitem__(3, "import ("),
        "healthcheck Python does not compile",
    ),
    (
        "image-upgraded-doc-stale",
        lambda c: _service(c, "temporal-ui").update(image="temporalio/ui:2.35.0"),
        "temporalio/ui:2.35.0 not named in docs/deployment.md",
    ),
    (
        "restart-unquoted",
        lambda c: _service(c, SETUP_SERVICE).update(restart=False),
        'needs restart: "no"',
    ),
    (
        "unknown-dependency",
        lambda c: _service(c, "worker")["depends_on"].update(
            redsi={"condition": "service_healthy"}
        ),
        "unknown service 'redsi'",
    ),
    (
        "no-condition",
        lambda c: _service(c, "ingest").update(depends_on=["worker"]),
        "without a condition",
    ),
    (
        "started-only",
        lambda c: _service(c, "temporal-ui").update(
            depends_on={"temporal": {"condition": "service_started"}}
        ),
        "temporal-ui: depends on temporal without a condition that waits",
    ),
    (
        "cycle",
        lambda c: _service(c, "temporal").update(
            depends_on={"temporal-setup": {"condition": "service_completed_successfully"}}
        ),
        "dependency cycle",
    ),
    ("not-a-setting", lambda c: _env(c, "worker").update(TEMPORAL_HOST="x"), "TEMPORAL_HOST is"),
    ("required-missing", lambda c: _env(c, "ingest").pop("REDIS_URL"), "ingest: REDIS_URL not set"),
    (
        "invalid-value",
        lambda c: _env(c, "ingest").update(JOURNEYS_INGEST_PORT="eighty"),
        "JOURNEYS_INGEST_PORT: Input should be a valid integer",
    ),
    (
        "env-file",
        lambda c: _service(c, "worker").update(env_file=[".env"]),
        "worker: env_file",
    ),
    (
        "url-host-not-a-service",
        lambda c: _env(c, "worker").update(REDIS_URL="redis://localhost:6379/0"),
        "host 'localhost' is not a service",
    ),
    (
        "url-wrong-port",
        lambda c: _env(c, "worker").update(
            DATABASE_URL="postgresql://journeys:journeys@postgres:5433/journeys"
        ),
        "not 5433",
    ),
    (
        "url-wrong-database",
        lambda c: _env(c, "worker").update(
            DATABASE_URL="postgresql://journeys:journeys@temporal-postgres:5432/journeys"
        ),
        "DATABASE_URL user 'journeys' but temporal-postgres has 'temporal'",
    ),
    (
        "temporal-wrong-port",
        lambda c: _env(c, "ingest").update(TEMPORAL_ADDRESS="temporal:7234"),
        "not 7234",
    ),
    (
        "temporal-not-temporal",
        lambda c: _env(c, "ingest").update(TEMPORAL_ADDRESS="redis:6379"),
        "redis is not a Temporal server",
    ),
    (
        "ui-url",
        lambda c: _env(c, "worker").update(TEMPORAL_UI_URL="http://localhost:8080"),
        "TEMPORAL_UI_URL=http://localhost:8080",
    ),
    (
        "container-name",
        lambda c: _service(c, "worker").update(container_name="w"),
        "container_name",
    ),
    ("worker-port", lambda c: _service(c, "worker").update(ports=["9000:9000"]), "published port"),
    (
        "undocumented-port",
        lambda c: _service(c, "redis").update(ports=["127.0.0.1:6380:6379"]),
        "host port 6380 missing from the ports table",
    ),
    (
        "stale-doc-port",
        lambda c: _service(c, "redis").pop("ports"),
        "ports table lists 6379, which nothing publishes",
    ),
    ("unquoted-port", lambda c: _service(c, "ingest").update(ports=[1342]), "quote port"),
    (
        "ingest-loopback",
        lambda c: _env(c, "ingest").update(JOURNEYS_INGEST_HOST="127.0.0.1"),
        "JOURNEYS_INGEST_HOST must be 0.0.0.0",
    ),
    (
        "search-attribute-missing",
        lambda c: _env(c, SETUP_SERVICE).update(
            JOURNEYS_SEARCH_ATTRIBUTES="JourneyPlanId=Keyword JourneyRunKey=Keyword"
        ),
        "does not register JourneyShard",
    ),
    (
        "search-attribute-type",
        lambda c: _env(c, SETUP_SERVICE).update(
            JOURNEYS_SEARCH_ATTRIBUTES=" ".join(
                f"{n}={'Keyword' if n == 'JourneyShard' else t}"
                for n, t in SEARCH_ATTRIBUTES.items()
            )
        ),
        "registers JourneyShard as Keyword",
    ),
    (
        "namespace-mismatch",
        lambda c: _env(c, "worker").update(TEMPORAL_NAMESPACE="journeys"),
        "worker: TEMPORAL_NAMESPACE='journeys'",
    ),
    (
        "worker-does-not-wait-for-setup",
        lambda c: _service(c, "worker")["depends_on"].pop(SETUP_SERVICE),
        "worker: does not wait for temporal-setup",
    ),
    (
        "missing-bind-source",
        lambda c: _service(c, SETUP_SERVICE).update(volumes=["./docker/nope:/journeys:ro"]),
        "./docker/nope does not exist",
    ),
    (
        "script-variable-unset",
        lambda c: _env(c, SETUP_SERVICE).pop("TEMPORAL_NAMESPACE"),
        "setup.sh requires TEMPORAL_NAMESPACE",
    ),
    (
        "undeclared-volume",
        lambda c: _service(c, "redis").update(volumes=["redis-dta:/data"]),
        "named volume 'redis-dta' not declared",
    ),
    (
        "examples-writable",
        lambda c: _service(c, "worker").update(volumes=["./examples:/app/examples"]),
        "worker: ./examples not mounted read-only",
    ),
    (
        "image-version",
        lambda c: _service(c, "ingest").update(image="journeys:9.9.9"),
        "expected journeys:",
    ),
    (
        "wrong-command",
        lambda c: _service(c, "ingest").update(command=["journeys", "worker"]),
        "ingest: command",
    ),
    ("top-level-typo", lambda c: c.update(service={}), "'service' is not a compose key"),
    (
        "undocumented-env",
        lambda c: _env(c, "worker").update(JOURNEYS_DB_POOL_SIZE_X="1"),
        "JOURNEYS_DB_POOL_SIZE_X missing from the environment table",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [(mutate, expected) for _, mutate, expected in BREAKAGES],
    ids=[name for name, _, _ in BREAKAGES],
)
def test_compose_checks_catch(
    compose: Compose,
    doc: str,
    version: str,
    breakage: Callable[[Compose], object],
    expected: str,
) -> None:
    before = set(all_compose_problems(compose, doc, version))
    broken = copy.deepcopy(compose)
    breakage(broken)
    new = set(all_compose_problems(broken, doc, version)) - before
    assert any(expected in problem for problem in new), sorted(new)


DOCKERFILE_BREAKAGES = [
    ("latest", "FROM python:3.11.11-slim-bookworm", "FROM python:latest", "tag latest"),
    ("floating", "FROM python:3.11.11-slim-bookworm", "FROM python:3.11-slim", "python:3.11.N"),
    ("cmd", 'CMD ["journeys", "worker"]', 'CMD ["python", "worker.py"]', "expected journeys"),
    ("root", "USER 10001:10001", "USER root", "runs as root"),
    ("no-user", "USER 10001:10001", "", "runs as root"),
    ("extras", "pip install .", "pip install '.[dev]'", "extras"),
    ("entrypoint", "CMD [", 'ENTRYPOINT ["tini", "--"]\nCMD [', "ENTRYPOINT"),
    ("env", "JOURNEYS_HOME=", "JOURNEYS_HOMEDIR=", "ENV JOURNEYS_HOMEDIR is not a setting"),
    ("workdir", "WORKDIR /app", "WORKDIR /srv", "WORKDIR should be /app"),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [(old, new, expected) for _, old, new, expected in DOCKERFILE_BREAKAGES],
    ids=[name for name, _, _, _ in DOCKERFILE_BREAKAGES],
)
def test_dockerfile_check_catches(dockerfile: str, old: str, new: str, expected: str) -> None:
    assert old in dockerfile
    problems = check_dockerfile(dockerfile.replace(old, new, 1))
    assert any(expected in problem for problem in problems), problems


def test_copy_check_names_each_missing_path(dockerfile: str, tmp_path: Path) -> None:
    problems = check_copy_sources(dockerfile, tmp_path, "")
    for source in copy_sources(dockerfile):
        assert any(f"COPY {source}:" in p and "does not exist" in p for p in problems), source


@pytest.mark.parametrize(
    ("dockerignore", "expected"),
    [("README.md", "COPY README.md"), ("*.md", "COPY README.md"), ("**/starter", "COPY starter/")],
)
def test_copy_check_catches_dockerignored_sources(
    dockerfile: str, dockerignore: str, expected: str
) -> None:
    problems = check_copy_sources(dockerfile, ROOT, dockerignore)
    assert any(expected in p and "excluded by .dockerignore" in p for p in problems), problems


@pytest.mark.parametrize(
    ("path", "patterns", "ignored"),
    [
        ("tests", "tests", True),
        ("tests/test_x.py", "tests", True),
        ("journeys/__pycache__", "**/__pycache__", True),
        ("journeys", "**/__pycache__", False),
        ("README.md", "*.md\n!README.md", False),
        ("docs/a.md", "*.md", False),
        ("x.egg-info", "**/*.egg-info", True),
    ],
)
def test_dockerignore_matching(path: str, patterns: str, ignored: bool) -> None:
    assert dockerignored(path, patterns) is ignored


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("8088:8088", (None, 8088, 8088)),
        ("127.0.0.1:8233:8080", ("127.0.0.1", 8233, 8080)),
        ("[::1]:5432:5432/tcp", ("::1", 5432, 5432)),
        ("7233", (None, None, 7233)),
        ({"target": 80, "published": "8080", "host_ip": "0.0.0.0"}, ("0.0.0.0", 8080, 80)),
    ],
)
def test_parse_port(entry: object, parsed: tuple[str | None, int | None, int]) -> None:
    assert parse_port(entry) == parsed


@pytest.mark.parametrize("entry", [1342, "8000-8005:8000-8005", "a:b:c:d"])
def test_parse_port_refuses(entry: object) -> None:
    with pytest.raises(ValueError):
        parse_port(entry)
