"""The whole schema in one place: importing this module puts every table of every models module in
`Base.metadata`, which migrations and the schema checks compare against."""

from __future__ import annotations

from connector.infra import models_console, models_groups, models_ops
from connector.infra.models import Base

__all__ = ["MODULES", "Base", "metadata"]

MODULES = (models_console, models_groups, models_ops)  # the models modules beside connector.infra.models
metadata = Base.metadata
