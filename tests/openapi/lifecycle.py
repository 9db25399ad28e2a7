"""Drives a running Steward through a customer's life with the Python client generated from
openapi.json, and holds every answer to the document: its status must be one the operation lists,
and its body must be valid (JSON Schema 2020-12) against the schema declared for that status.

Usage: lifecycle.py OPENAPI_JSON CLIENT_DIR BASE_URL ADMIN_EMAIL ADMIN_PASSWORD
CLIENT_DIR holds the generated package `steward_client`. Exit 1 with every difference found.
"""

import json
import re
import sys
import uuid

import httpx
from jsonschema import Draft202012Validator

doc_path, client_dir, base, admin_email, admin_password = sys.argv[1:6]
sys.path.insert(0, client_dir)

from steward_client import AuthenticatedClient, Client  # noqa: E402
from steward_client.api.audit import list_audit  # noqa: E402
from steward_client.api.auth import create_my_token, get_me, log_in  # noqa: E402
from steward_client.api.customer_lifecycle import deprovision_org, list_deprovision_records, restore_org  # noqa: E402
from steward_client.api.licenses import consume_usage, get_org_usage, list_org_usage_days, patch_org_license  # noqa: E402
from steward_client.api.lifecycle import deactivate_user, impersonate_user, reactivate_user  # noqa: E402
from steward_client.api.orgs import create_org, get_org, list_org_members  # noqa: E402
from steward_client.api.users import create_user, get_user, list_users  # noqa: E402
from steward_client.models import (  # noqa: E402
    ConsumeRequest,
    DeactivateRequest,
    DeprovisionRequest,
    ImpersonateRequest,
    LicensePatch,
    LoginRequest,
    NewOrg,
    NewToken,
    NewUser,
    RestoreRequest,
)

with open(doc_path) as f:
    DOC = json.load(f)

# Each documented path as a pattern of the concrete paths it stands for.
ROUTES = [
    (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path) for path in DOC["paths"]
]
differences: list[str] = []
answered: list[str] = []


def operation(method: str, path: str):
    for pattern, template in ROUTES:
        if pattern.match(path):
            return template, DOC["paths"][template].get(method.lower())
    return None, None


def check(response: httpx.Response) -> None:
    """Holds one answer to the document."""
    response.read()
    request = response.request
    template, op = operation(request.method, request.url.path)
    where = f"{request.method} {request.url.path} → {response.status_code}"
    answered.append(where)
    if op is None:
        differences.append(f"{where}: the document has no such operation")
        return
    declared = op["responses"].get(str(response.status_code))
    if declared is None:
        differences.append(f"{where}: {template} does not list {response.status_code}")
        return
    content_type = response.headers.get("content-type", "").split(";")[0]
    content = declared.get("content", {})
    if not content:
        if response.content:
            differences.append(f"{where}: a body the document does not declare")
        return
    if content_type not in content:
        differences.append(f"{where}: {content_type!r}, the document declares {sorted(content)}")
        return
    schema = dict(content[content_type].get("schema", {}))
    schema["components"] = DOC["components"]
    validator = Draft202012Validator(schema)
    for error in validator.iter_errors(response.json()):
        at = "/".join(str(p) for p in error.absolute_path)
        differences.append(f"{where}: at /{at}: {error.message}")


def client(token: str | None = None):
    hooks = {"event_hooks": {"response": [check]}}
    if token is None:
        return Client(base_url=base, httpx_args=hooks, raise_on_unexpected_status=True)
    return AuthenticatedClient(base_url=base, token=token, httpx_args=hooks, raise_on_unexpected_status=True)


def ok(reply, status: int):
    """The parsed body of an answer that must have `status`."""
    if reply.status_code != status:
        raise SystemExit(f"expected {status}, got {reply.status_code}: {reply.content!r}")
    return reply.parsed


suffix = uuid.uuid4().hex[:8]
anonymous = client()
session = ok(log_in.sync_detailed(client=anonymous, body=LoginRequest(email=admin_email, password=admin_password)), 200)
admin = client(session.token)
# An API token acts through the rest of the run; signing in is what the session was for.
token = ok(create_my_token.sync_detailed(client=admin, body=NewToken.from_dict({"name": f"lifecycle {suffix}", "scopes": ["users.impersonate"]})), 201)
admin = client(token.token)
ok(get_me.sync_detailed(client=admin), 200)

owner = ok(
    create_user.sync_detailed(
        client=admin, body=NewUser.from_dict({"email": f"owner-{suffix}@lifecycle.test", "name": "Olga Owner", "password": "olga the owner password"})
    ),
    201,
)
member = ok(
    create_user.sync_detailed(
        client=admin, body=NewUser.from_dict({"email": f"member-{suffix}@lifecycle.test", "name": "Max Member"})
    ),
    201,
)
ok(list_users.sync_detailed(client=admin, limit=2), 200)
org = ok(
    create_org.sync_detailed(
        client=admin,
        body=NewOrg.from_dict({"name": f"Lifecycle {suffix}", "owner_id": owner.id, "license": {"operations": 100}}),
    ),
    201,
)
ok(get_org.sync_detailed(org.id, client=admin), 200)
ok(list_org_members.sync_detailed(org.id, client=admin), 200)
ok(patch_org_license.sync_detailed(org.id, client=admin, body=LicensePatch.from_dict({"users": 10})), 200)

usage = ok(consume_usage.sync_detailed(org.id, client=admin, body=ConsumeRequest.from_dict({"operations": 60})), 200)
assert usage.operations.used == 60, usage
ok(consume_usage.sync_detailed(org.id, client=admin, body=ConsumeRequest.from_dict({"operations": 60})), 402)
ok(get_org_usage.sync_detailed(org.id, client=admin), 200)
days = ok(list_org_usage_days.sync_detailed(org.id, client=admin), 200)
assert sum(d.operations for d in days.days) == 60, days

reason = {"reason": "left the company"}
ok(deactivate_user.sync_detailed(member.id, client=admin, body=DeactivateRequest.from_dict(reason)), 200)
ok(reactivate_user.sync_detailed(member.id, client=admin), 200)
ok(get_user.sync_detailed(member.id, client=admin), 200)

plan = {"reason": "contract ended", "dry_run": True}
ok(deprovision_org.sync_detailed(org.id, client=admin, body=DeprovisionRequest.from_dict(plan)), 200)
ok(deprovision_org.sync_detailed(org.id, client=admin, body=DeprovisionRequest.from_dict({**plan, "dry_run": False})), 200)
ok(list_deprovision_records.sync_detailed(org.id, client=admin), 200)
ok(restore_org.sync_detailed(org.id, client=admin, body=RestoreRequest.from_dict({})), 200)

visit = ok(
    impersonate_user.sync_detailed(
        owner.id, client=admin, body=ImpersonateRequest.from_dict({"reason": "ticket 4711"})
    ),
    200,
)
ok(get_me.sync_detailed(client=client(visit.token)), 200)

page = ok(list_audit.sync_detailed(client=admin, limit=3), 200)
assert page.next_cursor, "three events leave more to read"
ok(list_audit.sync_detailed(client=admin, limit=3, cursor=page.next_cursor), 200)
ok(get_user.sync_detailed(str(uuid.uuid4()), client=admin), 404)
ok(get_me.sync_detailed(client=client()), 401)

print(f"{len(answered)} answers held to the document")
if differences:
    print("The document and the server differ:", file=sys.stderr)
    for difference in differences:
        print(f"  {difference}", file=sys.stderr)
    sys.exit(1)
