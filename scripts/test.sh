#!/usr/bin/env bash
# `make test`: the whole suite. PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set,
# else SQLite and an in-memory broker. With CI set, unreachable services fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=appreciation_site.settings.test
export PYTHONUNBUFFERED=1
.venv/bin/python scripts/check_services.py
exec .venv/bin/pytest "$@"
