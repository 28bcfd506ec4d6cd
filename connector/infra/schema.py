"""The whole schema in one place: `metadata` holds every table of every models module (importing them here
puts their tables in `Base.metadata`), for migrations and the schema checks to compare against."""

from __future__ import annotations

from connector.infra import models_console, models_groups, models_ops  # noqa: F401 (their tables join it)
from connector.infra.models import Base

__all__ = ["metadata"]

metadata = Base.metadata
