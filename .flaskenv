# Lets plain `flask jobs ...`, `flask users ...` and `flask cron ...` find the app (Flask reads
# this file, and .env after it). Without DATABASE_URL in .env or the environment, use
# `python3 dev.py flask ...`, which points them at the embedded database `dev.py up` runs.
FLASK_APP=app.web.cli_base:create_cli_app
