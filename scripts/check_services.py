"""Say clearly which database and broker the tests use; in CI, fail if one is unreachable."""

import os
import socket
import sys
from urllib.parse import urlparse


def reachable(url: str, default_port: int) -> tuple[bool, str]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=3):
            return True, f"{host}:{port}"
    except OSError as exc:
        return False, f"{host}:{port} ({exc})"


def main() -> int:
    in_ci = bool(os.environ.get("CI"))
    problems = []
    for name, default_port, fallback in (
        ("DATABASE_URL", 5432, "SQLite"),
        ("REDIS_URL", 6379, "in-memory broker"),
    ):
        url = os.environ.get(name)
        if not url:
            if in_ci:
                problems.append(f"{name} is not set: CI must test against the real service.")
            else:
                print(f"{name} not set: tests use {fallback}.")
            continue
        ok, where = reachable(url, default_port)
        if ok:
            print(f"{name}: {where} reachable.")
        else:
            problems.append(f"{name}: cannot reach {where}.")
    if problems:
        print("Test services are not available:", *problems, sep="\n  ", file=sys.stderr)
        print("Start PostgreSQL and Redis (see .ci/run) or unset the URLs.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
