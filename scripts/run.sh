#!/usr/bin/env bash
# `make run`: migrate, seed the demo school if the database is empty, then run the web server
# and a real Celery worker (with Celery beat) together until Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-appreciation_site.settings.local}
export PYTHONUNBUFFERED=1
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

mkdir -p var/broker/out var/broker/processed var/broker/control var/log

if [ "${APPRECIATION_TEST_MODEL:-0}" = "1" ] && [ -z "${APPRECIATION_BASE_MODEL:-}" ]; then
  # Offline mode: a tiny random model built locally; every draft page says it is noise.
  if [ ! -f var/test-model/adapter/adapter_config.json ]; then
    $BIN/python manage.py build_test_model var/test-model
  fi
  export APPRECIATION_BASE_MODEL="$PWD/var/test-model/base"
  export APPRECIATION_ADAPTER="$PWD/var/test-model/adapter"
fi

$BIN/python manage.py migrate --no-input -v 0
$BIN/python manage.py seed_demo --if-empty
# Whether the model is here, before the worker would find out on a teacher's first click
# (offline, nothing loaded; the worker runs the same check when it starts).
$BIN/python manage.py check_model

if [ -z "${REDIS_URL:-}" ]; then
  echo "Broker : transport « filesystem » de kombu (var/broker), aucun service requis."
else
  echo "Broker : $REDIS_URL"
fi

# One worker for both queues locally; production runs a separate GPU worker on `gpu`
# with --pool=solo (CUDA cannot be used from forked children).
$BIN/celery -A appreciation_site worker -Q default,gpu --pool=solo --concurrency=1 \
  --prefetch-multiplier=1 --loglevel=INFO --hostname="local@%h" &
WORKER_PID=$!
# Celery beat: the periodic recovery that sends stalled jobs again (CELERY_BEAT_SCHEDULE).
$BIN/celery -A appreciation_site beat --loglevel=INFO --schedule=var/celerybeat-schedule &
BEAT_PID=$!
cleanup() {
  trap - INT TERM EXIT
  kill "$WORKER_PID" "$BEAT_PID" 2>/dev/null || true
  wait "$WORKER_PID" "$BEAT_PID" 2>/dev/null || true
}
trap cleanup INT TERM EXIT

cat <<MSG

  Plateforme d'appréciations : http://$HOST:$PORT/
  Administration de l'établissement : http://$HOST:$PORT/admin/
  (les comptes de démonstration sont listés ci-dessus ; Ctrl-C arrête le serveur, le worker et beat)

MSG
$BIN/python manage.py runserver "$HOST:$PORT"
