"""Fixtures: a real database per backend (built by the migrations), a rolled-back
transaction per test, the app over a real ASGI transport, and an organization with keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import Database, make_engine
from app.main import create_app
from app.organizations import service as org_service
from app.organizations.schemas import ApiKeyCreate
from tests.databases import migrated_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database per backend for the whole run; tests roll back their rows."""
    with migrated_database(backend, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[Database]:
    """Sessions join one outer transaction that is rolled back after the test, so tests
    never see each other's rows (commits inside the app become SAVEPOINT releases)."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield Database.from_connection(connection)
        finally:
            await outer.rollback()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "email_url": "console://",
        "log_format": "text",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db=db)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pulse.test") as c:
        yield c


@dataclass
class Org:
    id: uuid.UUID
    name: str
    admin_key: str
    reports_key: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    @property
    def reports(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.reports_key}"}


async def create_org(db: Database, name: str) -> Org:
    async with db.sessionmaker() as session, session.begin():
        org = await org_service.get_or_create_organization(session, name)
        _, admin = await org_service.create_api_key(
            session, org.id, ApiKeyCreate(name="admin", scope="admin")
        )
        _, reports = await org_service.create_api_key(
            session, org.id, ApiKeyCreate(name="dash", scope="reports")
        )
        return Org(org.id, name, admin, reports)


@pytest_asyncio.fixture
async def org(db: Database) -> Org:
    return await create_org(db, "Acme")


@pytest_asyncio.fixture
async def other_org(db: Database) -> Org:
    return await create_org(db, "Globex")


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path
