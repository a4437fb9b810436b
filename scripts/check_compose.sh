#!/usr/bin/env bash
# No Docker engine runs on the CI machines: validate docker-compose.yml with Debian's
# docker-compose (`config` parses, interpolates and checks the file against its schema).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker-compose >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null) \
    || { echo "docker-compose could not be installed to validate docker-compose.yml" >&2; exit 1; }
fi
POSTGRES_PASSWORD=check DJANGO_SECRET_KEY=check DJANGO_ALLOWED_HOSTS=check \
  docker-compose -f docker-compose.yml config --quiet
echo "docker-compose.yml: valid"
