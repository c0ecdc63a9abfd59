"""The Dockerfile and docker-compose.yml agree with the code: every `pulse` command they
run parses with the real CLI, every PULSE_* variable is a real setting, and the values
they set pass the settings' own validation. No Docker and no database needed."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.routing import APIRoute

from app.cli import build_parser
from app.core.config import Settings, normalize_database_url, validate_email_url
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

# Stands in for the operator's secret wherever the compose file interpolates one.
FAKE_SECRET = "x" * 43


# --- the checkers -------------------------------------------------------------------------


def pulse_command_error(argv: list[str]) -> str | None:
    """Why `argv` is not a command the real `pulse` CLI accepts, or None when it is."""
    if not argv or argv[0] != "pulse":
        return f"{argv!r} does not run pulse"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse: unknown command or option, or --help
        return f"{shlex.join(argv)!r} rejected by app.cli (exit {exc.code}): {stderr.getvalue()}"
    return None


def parse_pulse(argv: list[str]) -> Any:
    error = pulse_command_error(argv)
    assert error is None, error
    return build_parser().parse_args(argv[1:])


SETTING_NAMES = {f"PULSE_{name.upper()}" for name in Settings.model_fields}


def unknown_pulse_variables(text: str) -> set[str]:
    """PULSE_* names in `text` that are no field of Settings (so would be ignored)."""
    return set(re.findall(r"\bPULSE_[A-Z0-9_]+", text)) - SETTING_NAMES


_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        is_set = name in env
        usable = is_set and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if usable else arg
        if op in (":?", "?"):
            if not usable:
                raise ValueError(f"{name}: {arg}")
            return env[name]
        return env.get(name, "")

    return _INTERPOLATION.sub(substitute, value)


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            excluded = not negate
    return excluded


# --- reading the Dockerfile ---------------------------------------------------------------


@dataclass
class Image:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    exposed: list[str] = field(default_factory=list)
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, target)


def _exec_form(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        return [str(arg) for arg in json.loads(text)]
    return shlex.split(text)  # shell form: the words /bin/sh -c would run


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or (not line.strip() and current):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def read_image(text: str) -> Image:
    image = Image()
    for keyword, rest in dockerfile_instructions(text):
        if keyword == "ENTRYPOINT":
            image.entrypoint = _exec_form(rest)
            image.cmd = []  # Docker resets an inherited CMD when ENTRYPOINT is set
        elif keyword == "CMD":
            image.cmd = _exec_form(rest)
        elif keyword == "HEALTHCHECK":  # HEALTHCHECK [--option=value ...] CMD ... | NONE
            match = re.fullmatch(r"(?:--\S+\s+)*(CMD|NONE)\b(.*)", rest, re.DOTALL)
            assert match, f"cannot read HEALTHCHECK {rest}"
            kind, command = match.groups()
            image.healthcheck = _exec_form(command) if kind == "CMD" else []
        elif keyword == "ENV":
            words = shlex.split(rest)
            if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
                image.env[words[0]] = rest.split(None, 1)[1]
            else:
                for word in words:
                    key, _, value = word.partition("=")
                    image.env[key] = value
        elif keyword == "WORKDIR":
            image.workdir = posixpath.join(image.workdir, rest)
        elif keyword == "USER":
            image.user = rest.split(":")[0]
        elif keyword == "EXPOSE":
            image.exposed += [port.split("/")[0] for port in rest.split()]
        elif keyword in ("COPY", "ADD"):
            words = [w for w in _exec_form(rest) if not w.startswith("--")]
            *sources, target = words
            image.copies.append(
                (sources, posixpath.normpath(posixpath.join(image.workdir, target)))
            )
    return image


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image(DOCKERFILE.read_text())


# --- reading docker-compose.yml -----------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the <<: *anchor merges
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data


def pulse_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run our image: they build it, or use the image a build produces."""
    services = compose["services"]
    built = {s.get("image") for s in services.values() if "build" in s} - {None}
    found = {n: s for n, s in services.items() if "build" in s or s.get("image") in built}
    assert found, "no service in docker-compose.yml builds or uses the Pulse image"
    return found


def _argv(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def service_argv(service: dict[str, Any], image: Image) -> list[str]:
    """What the container runs: entrypoint + command, each defaulting to the image's."""
    entrypoint = _argv(service.get("entrypoint"))
    command = _argv(service.get("command"))
    if entrypoint is None:
        entrypoint = image.entrypoint
        command = image.cmd if command is None else command
    return entrypoint + (command or [])


def service_environment(
    service: dict[str, Any], image: Image, host: Mapping[str, str]
) -> dict[str, str]:
    """The container's environment: the image's ENV, then the service's, interpolated."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    env = dict(image.env)
    env.update({k: interpolate(str(v), host) for k, v in raw.items() if v is not None})
    return env


# --- the tests ----------------------------------------------------------------------------


def test_the_checker_rejects_bad_commands() -> None:
    assert pulse_command_error(["pulse", "serve", "--host", "0.0.0.0"]) is None
    assert (
        pulse_command_error(
            ["pulse", "keys", "create", "--org", "A", "--name", "n", "--scope", "admin"]
        )
        is None
    )
    assert pulse_command_error(["pulse", "serve", "--bogus"]) is not None
    assert pulse_command_error(["pulse", "serve", "--port", "eighty"]) is not None
    assert pulse_command_error(["pulse", "sever"]) is not None
    assert pulse_command_error(["pulse", "keys", "create", "--scope", "root"]) is not None
    assert pulse_command_error(["uvicorn", "app.main:app"]) is not None
    assert unknown_pulse_variables("PULSE_DATABASE_URL=x PULSE_DB_URL=y") == {"PULSE_DB_URL"}
    with pytest.raises(ValueError, match="set it"):
        interpolate("${PULSE_SECRET_KEY:?set it}", {"PULSE_SECRET_KEY": ""})


def test_dockerfile_default_command_is_a_real_pulse_command(image: Image) -> None:
    args = parse_pulse(image.entrypoint + image.cmd)
    assert args.command == "serve"
    assert args.host == "0.0.0.0", "127.0.0.1 inside a container is unreachable from outside"
    assert str(args.port) in image.exposed


def test_dockerfile_healthcheck_probes_a_real_liveness_route(image: Image) -> None:
    assert image.healthcheck, "the Dockerfile has no HEALTHCHECK"
    assert image.healthcheck[0] != "pulse" or pulse_command_error(image.healthcheck) is None
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(image.healthcheck))
    assert len(urls) == 1, f"expected one URL in the healthcheck, found {urls}"
    url = urlsplit(urls[0])
    assert url.hostname in ("127.0.0.1", "localhost")
    assert str(url.port) == str(parse_pulse(image.entrypoint + image.cmd).port)

    # The route exists and answers GET (building the app opens no database connection).
    settings = Settings(_env_file=None, database_url="sqlite://", email_url="console://")  # type: ignore[call-arg]
    routes = [r for r in create_app(settings).routes if isinstance(r, APIRoute)]
    assert any(r.path == url.path and "GET" in r.methods for r in routes), url.path


def test_dockerfile_runs_as_a_user_from_the_folder_holding_migrations(image: Image) -> None:
    assert image.user not in ("root", "0"), "the image must not run as root"
    assert image.workdir == "/srv/pulse"
    # app/core/migrations.py: installed into site-packages, the app finds migrations/ in
    # the current directory, so the folder must be copied to <WORKDIR>/migrations.
    targets = {
        posixpath.join(target, posixpath.basename(src.rstrip("/")))
        if target.endswith("/") or len(sources) > 1
        else target
        for sources, target in image.copies
        for src in sources
        if src.rstrip("/") == "migrations"
    }
    assert f"{image.workdir}/migrations" in targets, targets
    assert image.env.get("PULSE_ENV") == "production"


def test_dockerignore_keeps_what_the_image_copies_and_drops_secrets(image: Image) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    for sources, _ in image.copies:
        for source in sources:
            for path in ROOT.glob(source.rstrip("/")):  # a wildcard may match nothing
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                for file in files:
                    rel = file.relative_to(ROOT).as_posix()
                    if "__pycache__" in rel:
                        continue
                    assert not dockerignore_excludes(rel, patterns), f"{rel} is ignored"
    for private in (
        ".env",
        ".venv/bin/python",
        "pulse.db",
        ".pulse-admin-key",
        "mail/x.eml",
        ".git/HEAD",
        "app/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignore_excludes(private, patterns), f"{private} would enter the image"


def test_every_pulse_variable_named_is_a_real_setting() -> None:
    for path in (DOCKERFILE, COMPOSE):
        unknown = unknown_pulse_variables(path.read_text())
        assert not unknown, f"{path.name} sets {sorted(unknown)}, which Settings ignores"


def test_every_compose_command_is_a_real_pulse_command(
    compose: dict[str, Any], image: Image
) -> None:
    commands = {}
    for name, service in pulse_services(compose).items():
        argv = service_argv(service, image)
        error = pulse_command_error(argv)
        assert error is None, f"service {name}: {error}"
        commands[name] = build_parser().parse_args(argv[1:])
        if service.get("healthcheck", {}).get("test"):
            test = _argv(service["healthcheck"]["test"]) or []
            if test[:1] == ["CMD"] and test[1:2] == ["pulse"]:
                assert pulse_command_error(test[1:]) is None

    by_command = {name: args.command for name, args in commands.items()}
    assert "migrate" in by_command.values()
    assert "worker" in by_command.values()
    servers = [name for name, cmd in by_command.items() if cmd == "serve"]
    assert len(servers) >= 2, f"expected two API instances, found {servers}"
    for name in servers:
        assert commands[name].host == "0.0.0.0", f"{name} listens on {commands[name].host}"
        assert not commands[name].with_worker, f"{name} runs a second worker in-process"


def test_compose_orders_start_up_around_the_migration(
    compose: dict[str, Any], image: Image
) -> None:
    services = pulse_services(compose)
    commands = {name: parse_pulse(service_argv(s, image)).command for name, s in services.items()}
    (migrate,) = [name for name, cmd in commands.items() if cmd == "migrate"]
    waits_for = compose["services"][migrate]["depends_on"]
    assert any(cond.get("condition") == "service_healthy" for cond in waits_for.values())
    for name, cmd in commands.items():
        if cmd in ("serve", "worker"):
            depends = services[name].get("depends_on", {})
            assert depends.get(migrate, {}).get("condition") == "service_completed_successfully"
        if cmd != "serve":  # the image's healthcheck polls the API; nothing answers here
            assert services[name].get("healthcheck", {}).get("disable") is True, name


def test_compose_urls_and_settings_are_valid(compose: dict[str, Any], image: Image) -> None:
    names = set(compose["services"])
    host = {"PULSE_SECRET_KEY": FAKE_SECRET}
    for name, service in pulse_services(compose).items():
        with pytest.raises(ValueError, match="PULSE_SECRET_KEY"):
            service_environment(service, image, {})  # compose refuses to start without it
        env = service_environment(service, image, host)

        database_url = env["PULSE_DATABASE_URL"]
        assert normalize_database_url(database_url).startswith("postgresql+asyncpg://")
        db = urlsplit(database_url)
        assert db.hostname in names, f"{name}: database host {db.hostname} is no service"
        postgres = compose["services"][db.hostname]["environment"]
        assert (db.username, db.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert db.path == "/" + postgres["POSTGRES_DB"]

        email_url = env["PULSE_EMAIL_URL"]
        assert validate_email_url(email_url) == email_url
        mail = urlsplit(email_url)
        assert mail.hostname in names, f"{name}: email host {mail.hostname} is no service"

        # All of it together, as the container would read it (production checks included).
        values = {
            k.removeprefix("PULSE_").lower(): v for k, v in env.items() if k.startswith("PULSE_")
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        assert settings.env == "production"
        assert settings.secret_key is not None
        assert settings.secret_key.get_secret_value() == FAKE_SECRET
