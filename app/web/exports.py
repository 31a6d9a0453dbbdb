"""Report exports: upload a CSV, watch the report being built, download it."""

from __future__ import annotations

import io

from flask import Blueprint, abort, current_app, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage
from werkzeug.utils import redirect

from app.config import Settings
from app.models import Export
from app.reports import service, summary
from app.reports.csvfile import InvalidCSV
from app.reports.names import clean_filename, stem
from app.reports.numbers import human
from app.web import limits
from app.web.db import get_session
from app.web.users import require_user

bp = Blueprint("exports", __name__)

EXTENSIONS = (".csv", ".tsv", ".txt")
DOWNLOADS = {"pdf": ("report_pdf", "application/pdf"), "csv": ("report_csv", "text/csv")}
#: The largest export id (an INTEGER column): a larger number in a URL is a 404, not an
#: "integer out of range" from the database.
LAST_ID = 2**31 - 1


class UploadRefused(ValueError):
    """An upload refused before parsing; the message is for the person who sent it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _read_upload(upload: FileStorage | None, limit: int) -> tuple[str, bytes]:
    """Return (filename, bytes) of the uploaded file, or raise with a message for people."""
    if upload is None or not upload.filename:
        raise UploadRefused("Choose a CSV file to upload.")
    name = clean_filename(upload.filename)
    if not name.lower().endswith(EXTENSIONS):
        raise UploadRefused(f"{name} is not a CSV file: choose a file ending in .csv.")
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise UploadRefused(f"{name} is larger than the {human_size(limit)} limit.", 413)
    return name, data


def human_size(limit: int) -> str:
    return f"{limit / 1024 / 1024:.3g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def _index(
    error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    user, session = require_user(), get_session()
    exports = service.exports_of(session, user.id)
    statuses = service.statuses(session, exports)
    page = render_template("exports/index.html", exports=exports, statuses=statuses, error=error)
    return page, status, headers or {}


@bp.get("/exports")
def index() -> ResponseReturnValue:
    return _index()


@bp.post("/exports")
def create() -> ResponseReturnValue:
    """Store the upload and queue its report in one transaction, and answer at once."""
    user, session = require_user(), get_session()
    settings: Settings = current_app.config["PILLARS_SETTINGS"]
    limits.enforce_now(limits.uploads(user.id))  # counts even if refused below; else 429
    try:
        name, data = _read_upload(request.files.get("file"), settings.upload_max_bytes)
        export = service.create_export(
            session,
            user.id,
            name,
            data,
            settings.reports_in_flight_max,
            settings.report_builds_per_user,
        )
    except UploadRefused as exc:
        return _index(str(exc), exc.status)
    except InvalidCSV as exc:
        return _index(f"{name}: {exc}", 400)
    except service.TooManyInFlight as exc:
        session.rollback()  # ends the transaction, and with it the user's upload lock
        return _index(str(exc), 429, {"Retry-After": str(service.RETRY_AFTER)})
    session.commit()
    return redirect(url_for("exports.show", export_id=export.id), 303)


@bp.get(f"/exports/<int(min=1, max={LAST_ID}):export_id>")
def show(export_id: int) -> ResponseReturnValue:
    user, session = require_user(), get_session()
    export = service.export_of(session, user.id, export_id) or abort(404)
    status = service.status(session, export)
    rows = None
    if status.done:
        session.refresh(export, ["report_csv"])
        rows = summary.read(export.report_csv) if export.report_csv else None
    return render_template("exports/show.html", export=export, status=status, summary=rows)


@bp.app_template_filter("human")
def human_number(cell: str) -> str:
    """A number from the summary CSV with thousands separators; other text as it is."""
    try:
        return human(float(cell))
    except ValueError:
        return cell


@bp.get(f"/exports/<int(min=1, max={LAST_ID}):export_id>/report.<any(pdf, csv):kind>")
def download(export_id: int, kind: str) -> ResponseReturnValue:
    """Send the finished report; 409 while it is still being built."""
    user, session = require_user(), get_session()
    column, mimetype = DOWNLOADS[kind]
    export = service.export_of(session, user.id, export_id) or abort(404)
    session.refresh(export, [column])  # the file itself, which listing never loads
    data: bytes | None = getattr(export, column)
    if data is None:
        abort(409, "This report is not ready yet.")
    # Cleaned again: names stored before names were cleaned at upload may hold CR or LF.
    name = f"{stem(export.filename)}-report.{kind}"
    return send_file(io.BytesIO(data), mimetype, as_attachment=True, download_name=name)


def result_links(export: Export) -> dict[str, str]:
    """Where to fetch the finished export, for pages and the JSON status."""
    return {
        "page": url_for("exports.show", export_id=export.id),
        "pdf": url_for("exports.download", export_id=export.id, kind="pdf"),
        "csv": url_for("exports.download", export_id=export.id, kind="csv"),
    }
