"""The operations dashboard at /admin: see and steer the queue and cron without SQL.

One parent blueprint owns the guard (`access.guard`): every view below it is
for signed-in admins only, and every POST must come from this site's own
pages. The child blueprints are the areas of the dashboard.
"""

from __future__ import annotations

from flask import Blueprint

from app.web.admin import access, actions, cron, display, jobs, limits, overview

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(access.guard)
for child in (overview, jobs, actions, limits, cron):
    bp.register_blueprint(child.bp)
for name, function in display.FILTERS.items():
    bp.add_app_template_filter(function, name)
