"""Report exports: upload a CSV, watch the report being built, download it."""

from __future__ import annotations

import io
import posixpath

from flask import Blueprint, abort, current_app, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage
from werkzeug.utils import redirect

from app.config import Settings
from app.models import Export
from app.reports import service
from app.reports.csvfile import InvalidCSV
from app.web import limits
from app.web.db import get_session
from app.web.users import require_user

bp = Blueprint("exports", __name__)

EXTENSIONS = (".csv", ".tsv", ".txt")
DOWNLOADS = {"pdf": ("report_pdf", "application/pdf"), "csv": ("report_csv", "text/csv")}


class UploadRefused(ValueError):
    """An upload refused before parsing; the message is for the person who sent it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _read_upload(upload: FileStorage | None, limit: int) -> tuple[str, bytes]:
    """Return (filename, bytes) of the uploaded file, or raise with a message for people."""
    if upload is None or not upload.filename:
        raise UploadRefused("Choose a CSV file to upload.")
    name = posixpath.basename(upload.filename.replace("\\", "/"))[-200:]
    if not name.lower().endswith(EXTENSIONS):
        raise UploadRefused(f"{name} is not a CSV file: choose a file ending in .csv.")
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise UploadRefused(f"{name} is larger than the {human_size(limit)} limit.", 413)
    return name, data


def human_size(limit: int) -> str:
    return f"{limit / 1024 / 1024:.3g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def _index(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    user = require_user()
    exports = service.exports_of(get_session(), user.id)
    return render_template("exports/index.html", exports=exports, error=error), status


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
        export = service.create_export(session, user.id, name, data)
    except UploadRefused as exc:
        return _index(str(exc), exc.status)
    except InvalidCSV as exc:
        return _index(f"{name}: {exc}", 400)
    session.commit()
    return redirect(url_for("exports.show", export_id=export.id), 303)


@bp.get("/exports/<int:export_id>")
def show(export_id: int) -> ResponseReturnValue:
    user, session = require_user(), get_session()
    export = service.export_of(session, user.id, export_id) or abort(404)
    status = service.status(session, export)
    return render_template("exports/show.html", export=export, status=status)


@bp.get("/exports/<int:export_id>/report.<any(pdf, csv):kind>")
def download(export_id: int, kind: str) -> ResponseReturnValue:
    """Send the finished report; 409 while it is still being built."""
    user, session = require_user(), get_session()
    column, mimetype = DOWNLOADS[kind]
    export = service.export_of(session, user.id, export_id) or abort(404)
    session.refresh(export, [column])  # the file itself, which listing never loads
    data: bytes | None = getattr(export, column)
    if data is None:
        abort(409, "This report is not ready yet.")
    stem = export.filename.rsplit(".", 1)[0]
    return send_file(
        io.BytesIO(data), mimetype, as_attachment=True, download_name=f"{stem}-report.{kind}"
    )


def result_links(export: Export) -> dict[str, str]:
    """Where to fetch the finished export, for pages and the JSON status."""
    return {
        "page": url_for("exports.show", export_id=export.id),
        "pdf": url_for("exports.download", export_id=export.id, kind="pdf"),
        "csv": url_for("exports.download", export_id=export.id, kind="csv"),
    }
