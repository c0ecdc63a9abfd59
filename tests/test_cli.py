"""The `pulse` command as a user runs it: real processes, a real SQLite file, real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

PULSE = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run_pulse(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PULSE, *args],
        cwd=cwd,
        env=_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(cwd: Path, extra: dict[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    base["PYTHONPATH"] = str(ROOT)
    base["PULSE_DATABASE_URL"] = f"sqlite:///{cwd / 'pulse.db'}"
    base["PULSE_EMAIL_URL"] = (cwd / "mail").as_uri()
    return {**base, **(extra or {})}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PULSE_DATABASE_URL", "mysql://root@localhost/pulse"),
        ("PULSE_DATABASE_URL", "not a url"),
        ("PULSE_EMAIL_URL", "smtp://mail.example.com:notaport"),
        ("PULSE_EMAIL_URL", "carrier-pigeon://coop"),
        ("PULSE_PUBLIC_BASE_URL", "ftp://pulse.example.com"),
    ],
)
def test_bad_setting_stops_start_up_with_one_clear_line(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run_pulse("migrate", cwd=tmp_path, env={variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = run_pulse("serve", cwd=tmp_path, env={"PULSE_ENV": "production"})
    assert result.returncode == 2
    assert "PULSE_SECRET_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("secret", ["change-me", "pulse-development-secret-not-for-production"])
def test_production_refuses_a_published_secret_key(tmp_path: Path, secret: str) -> None:
    """Both keys are in the source code: links signed with them could be forged."""
    result = run_pulse(
        "migrate", cwd=tmp_path, env={"PULSE_ENV": "production", "PULSE_SECRET_KEY": secret}
    )
    assert result.returncode == 2
    assert "PULSE_SECRET_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_on_a_database_never_migrated_says_to_run_migrate(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*PULSE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, {"PULSE_LOG_FORMAT": "text"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "pulse migrate" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            seen += line
        assert "never migrated: run pulse migrate" in seen, seen
        while time.monotonic() < deadline:  # it still serves, and says it is not ready
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready.status_code == 503
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_keys_create_prints_a_working_key_alone_on_the_last_line(tmp_path: Path) -> None:
    assert run_pulse("migrate", cwd=tmp_path).returncode == 0
    result = run_pulse(
        "keys", "create", "--org", "Acme", "--name", "bootstrap", "--scope", "admin", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("pulse_")
    with _serve(tmp_path) as base:
        r = httpx.get(f"{base}/v1/organization", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert r.json()["name"] == "Acme"


def test_demo_fills_an_empty_database_once(tmp_path: Path) -> None:
    assert run_pulse("migrate", cwd=tmp_path).returncode == 0
    first = run_pulse("demo", "--key-file", "key.txt", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert (tmp_path / "key.txt").read_text().strip() == key

    again = run_pulse("demo", cwd=tmp_path)
    assert again.returncode == 1
    assert "not empty" in again.stderr
    quiet = run_pulse("demo", "--if-empty", "--key-file", "key.txt", cwd=tmp_path)
    assert quiet.returncode == 0
    assert quiet.stdout.strip().splitlines()[-1] == key

    with _serve(tmp_path) as base:
        headers = {"Authorization": f"Bearer {key}"}
        people = []
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = httpx.get(f"{base}/v1/employees", headers=headers, params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            people += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert 70 <= len(people) <= 90
    assert len({p["team"] for p in people if p["team"]}) == 6
    assert len({p["department"] for p in people if p["department"]}) == 3
    assert any(p["locale"] == "ar" and "\u0600" <= p["name"][0] <= "\u06ff" for p in people)
    assert any(p["locale"] == "en" for p in people)
    with_manager = [p for p in people if p["manager_id"]]
    assert len(with_manager) == len(people) - 1  # everyone but the CEO reports to someone


def test_worker_once_runs_a_tick_and_exits(tmp_path: Path) -> None:
    assert run_pulse("migrate", cwd=tmp_path).returncode == 0
    result = run_pulse("worker", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_worker_refuses_a_database_behind_the_code(tmp_path: Path) -> None:
    """New code on an old schema would write rows the database refuses (a cancelled
    email before migration 0007) and lose the rest of that transaction."""
    assert run_pulse("migrate", "0006", cwd=tmp_path).returncode == 0
    behind = run_pulse("worker", "--once", cwd=tmp_path)
    assert behind.returncode == 2
    assert behind.stderr.strip().splitlines()[-1].endswith("run pulse migrate")
    assert "0006" in behind.stderr
    assert run_pulse("migrate", cwd=tmp_path).returncode == 0
    assert run_pulse("worker", "--once", cwd=tmp_path).returncode == 0


class _serve:
    """`pulse serve --with-worker` as a real process on a free port, until ready."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.port = free_port()

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [*PULSE, "serve", "--with-worker", "--port", str(self.port)],
            cwd=self.cwd,
            env=_env(self.cwd, {"PULSE_WORKER_INTERVAL_SECONDS": "0.2"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pulse serve exited: {self.proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("pulse serve did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_a_misspelt_setting_is_reported_not_silently_ignored(tmp_path: Path) -> None:
    result = run_pulse("migrate", cwd=tmp_path, env={"PULSE_DB_URL": "sqlite:///other.db"})
    assert result.returncode == 0
    assert "PULSE_DB_URL is not a Pulse setting" in result.stderr


def test_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """docker stop and systemd send SIGTERM; the worker must exit promptly and cleanly."""
    assert run_pulse("migrate", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [*PULSE, "worker"],
        cwd=tmp_path,
        env=_env(tmp_path, {"PULSE_WORKER_INTERVAL_SECONDS": "60", "PULSE_LOG_FORMAT": "text"}),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        seen = ""
        while "worker started" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()  # type: ignore[union-attr]
        assert "worker started" in seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "worker stopped" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
