#!/usr/bin/env bash
# `make test`: the whole suite. PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set,
# else SQLite and an in-memory broker. With CI set, unreachable services fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=appreciation_site.settings.test
export PYTHONUNBUFFERED=1
.venv/bin/python scripts/check_services.py
if [ ! -x "${APPRECIATION_CHROMIUM:-/usr/bin/chromium}" ] \
  || [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  echo "Browser tests (tests/browser) need chromium and axe-core:" \
    "apt-get install chromium && npm ci --prefix tests/browser (skipped without them; CI fails)."
fi
exec .venv/bin/pytest "$@"
