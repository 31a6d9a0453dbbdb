"""JSON for scripts and for the export page's live status: the state of a job you own."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort

from app.reports import service
from app.web.db import get_session
from app.web.exports import result_links
from app.web.users import require_user

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/exports")
def exports() -> dict[str, Any]:
    """Your exports, newest first, each with its state: what the list page refreshes from."""
    user, session = require_user(), get_session()
    found = service.exports_of(session, user.id)
    return {
        "exports": [
            {
                "id": export.id,
                "filename": export.filename,
                "state": status.state,
                "label": status.label,
                "rows": export.row_count if status.done else None,
                "columns": export.column_count,
            }
            for export, status in zip(found, service.statuses(session, found).values(), strict=True)
        ]
    }


@bp.get("/jobs/<uuid:job_id>")
def job_status(job_id: uuid.UUID) -> dict[str, Any]:
    """State, progress, error and result links of a job; 404 unless it builds your export."""
    user, session = require_user(), get_session()
    export = service.export_for_job(session, user.id, job_id) or abort(404, "No such job.")
    status = service.status(session, export)
    return {
        "job_id": str(job_id),
        "state": status.state,
        "progress": round(status.progress, 3),
        "label": status.label,
        "message": status.message,
        "error": status.error,
        "result": result_links(export) if status.done else None,
    }
