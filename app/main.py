"""The ASGI application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.checkins import emails as _checkin_emails  # noqa: F401 - registers email kinds
from app.checkins.pages import api_router as meeting_api_router
from app.checkins.pages import pages_router as meeting_pages_router
from app.checkins.router import router as checkins_router
from app.core import migrations
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import install_error_handlers, problem_response
from app.core.idempotency import IdempotencyMiddleware
from app.core.middleware import BodyLimitMiddleware, Metrics, RequestContextMiddleware
from app.core.validation import reject_nul_in_request
from app.employees.router import router as employees_router
from app.notifications.router import router as notifications_router
from app.organizations.router import router as organizations_router
from app.reports.router import router as reports_router
from app.surveys import emails as _survey_emails  # noqa: F401 - registers email kinds
from app.surveys.pages import pages_router as survey_pages_router
from app.surveys.pages import respond_router as survey_respond_router
from app.surveys.router import router as surveys_router

log = logging.getLogger("pulse.app")

DESCRIPTION = """
Pulse: pulse surveys, eNPS with margins of error, and one-on-one check-ins.

Authenticate with `Authorization: Bearer <api key>`. Errors are
`application/problem+json` (RFC 9457); validation errors list the fields in `errors`.
Lists take `?limit=` and `?cursor=`. `POST` honours `Idempotency-Key` for 24 hours.
"""


def _report_worker_end(task: asyncio.Task[None]) -> None:
    """The in-process worker runs until shutdown; if it ends before, say so at once
    instead of when the server stops."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("pulse.worker").error(
            "in-process worker stopped", exc_info=task.exception()
        )


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    with_worker: bool = False,
) -> FastAPI:
    """Build the app. Tests pass their own ``db`` (one rolled-back connection); the CLI
    lets the app own an engine for the configured database."""
    settings = settings or get_settings()
    owns_db = db is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker_task: asyncio.Task[None] | None = None
        if owns_db:
            await migrations.warn_if_pending(app.state.db.engine, settings.database_url)
        if with_worker:
            from app.scheduling.worker import run_forever

            worker_task = asyncio.create_task(run_forever(app.state.db, settings))
            worker_task.add_done_callback(_report_worker_end)
        try:
            yield
        finally:
            try:
                if worker_task is not None:
                    worker_task.cancel()
                    # Its error, if it died, was logged when it ended.
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await worker_task
            finally:
                if owns_db:
                    await app.state.db.dispose()

    app = FastAPI(
        title="Pulse",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_in_request)],
    )
    app.state.settings = settings
    app.state.db = db or Database.from_url(
        settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    metrics = Metrics()
    app.state.metrics = metrics

    install_error_handlers(app)
    app.include_router(organizations_router)
    app.include_router(employees_router)
    app.include_router(notifications_router)
    app.include_router(surveys_router)
    app.include_router(survey_pages_router)
    app.include_router(survey_respond_router)
    app.include_router(reports_router)
    app.include_router(checkins_router)
    app.include_router(meeting_pages_router)
    app.include_router(meeting_api_router)
    _add_operations(app, settings)

    # Added innermost first: the request-context layer must see everything, including 413s.
    app.add_middleware(
        IdempotencyMiddleware,
        get_db=lambda: app.state.db,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
    )
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=lambda path: (
            settings.max_import_bytes if path.endswith("/import") else settings.max_body_bytes
        ),
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


def _add_operations(app: FastAPI, settings: Settings) -> None:
    @app.get(
        "/healthz",
        tags=["operations"],
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    async def healthz() -> dict[str, str]:
        """The process is up (liveness); touches nothing else."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {"status": "ready", "database": "ok", "migrations": "at head"}
                    }
                }
            },
            503: {"description": "database unreachable or migrations behind"},
        },
    )
    async def readyz(request: Request) -> Response:
        """Ready for traffic: the database answers and its schema is at the latest migration."""
        db: Database = request.app.state.db
        try:
            async with db.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
                rows = (
                    (await session.execute(text("SELECT version_num FROM alembic_version")))
                    .scalars()
                    .all()
                )
        except Exception as exc:  # any failure here means "not ready", never a 500
            log.warning("readiness check failed: %s", exc.__class__.__name__)
            return problem_response(
                503,
                "database unreachable or not migrated",
                code="not_ready",
                request_id=request.state.request_id,
            )
        heads = migrations.head_revisions(settings.database_url)
        if set(rows) != heads:
            return problem_response(
                503,
                f"database at migration {sorted(rows)}, code expects {sorted(heads)}: "
                "run pulse migrate",
                code="migrations_pending",
                request_id=request.state.request_id,
            )
        return JSONResponse({"status": "ready", "database": "ok", "migrations": "at head"})

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}
        },
    )
    async def metrics(request: Request) -> Response:
        """Prometheus text format: request counts and latencies by route."""
        return Response(
            generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )
