"""Run the test CAS server: migrate its database, create its users and services, serve.

    CAS_TEST_DB=/tmp/x/cas.sqlite3 python -m tests.cas_server.serve SPEC.json

SPEC.json: {"users": [{"username", "password", "email"}], "services": [regex, ...]}. The
server listens on 127.0.0.1 on a free port and prints "READY <port>" once it answers;
SIGTERM stops it.
"""

from __future__ import annotations

import json
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass


def main(spec_path: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.cas_server.settings")
    import django

    django.setup()
    from cas_server.models import ReplaceAttributName, ServicePattern
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    for user in spec["users"]:
        account = user_model(username=user["username"], email=user.get("email", ""))
        account.set_password(user["password"])
        account.save()
    for position, pattern in enumerate(spec["services"]):
        service = ServicePattern.objects.create(pos=position, name=f"s{position}", pattern=pattern)
        # The platform may match on the e-mail address: released as the attribute `mail`.
        ReplaceAttributName.objects.create(name="email", replace="mail", service_pattern=service)
    server = make_server(
        "127.0.0.1",
        0,
        get_wsgi_application(),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
