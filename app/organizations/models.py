from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, TimestampMixin, new_id

SCOPES = ("admin", "reports")


class Organization(TimestampMixin, Base):
    __tablename__ = "organization"
    __table_args__ = (CheckConstraint("min_group_size >= 3", name="min_group_size"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    default_locale: Mapped[str] = mapped_column(String(35), default="en")
    default_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    min_group_size: Mapped[int] = mapped_column(default=5)


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint("scope IN ('admin', 'reports')", name="scope"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
