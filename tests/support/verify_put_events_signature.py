"""Checks the SigV4 signatures of PutEvents requests as they arrived at an endpoint: botocore's SigV4Auth, the
signer of AWS's own Python SDK, signs the same request (method, URL, the headers the request says it signed, the
body as received) at the request's own time, and must give the same `Authorization` header.

Usage: verify_put_events_signature.py REQUESTS_JSON URL REGION ACCESS_KEY_ID SECRET_ACCESS_KEY
REQUESTS_JSON is a file holding a list of {"headers": [[name, value], ...], "body": text}.
Prints one JSON line per request: {"ok": true} or {"ok": false, "problem": ...}.
"""

import datetime
import json
import re
import sys

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<credential>[^,]+), SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
# What PutEvents needs signed: botocore signs these, and a request signing fewer could be altered on the way.
REQUIRED = {"content-type", "host", "x-amz-date", "x-amz-target"}


def check(request, url, region, access_key, secret_key):
    headers = {}
    for name, value in request["headers"]:
        if name in headers:
            return f"header {name} is repeated"
        headers[name] = value
    match = AUTHORIZATION.match(headers.get("authorization", ""))
    if not match:
        return f"the authorization header is not SigV4: {headers.get('authorization')!r}"
    signed = match["signed"].split(";")
    if not REQUIRED <= set(signed):
        return f"SignedHeaders is {match['signed']}, which leaves out {sorted(REQUIRED - set(signed))}"
    signed_at = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    # botocore derives host from the URL and adds x-amz-date itself; the other signed headers are given as sent.
    given = {name: headers[name] for name in signed if name not in ("host", "x-amz-date")}
    botocore.auth.get_current_datetime = lambda: signed_at
    reference = AWSRequest(method="POST", url=url, headers=given, data=request["body"].encode())
    SigV4Auth(Credentials(access_key, secret_key), "events", region).add_auth(reference)
    expected = reference.headers["Authorization"]
    if expected != headers["authorization"]:
        return f"botocore signs it {expected!r}, the request carries {headers['authorization']!r}"
    return None


def main():
    path, url, region, access_key, secret_key = sys.argv[1:]
    with open(path) as file:
        requests = json.load(file)
    for request in requests:
        problem = check(request, url, region, access_key, secret_key)
        print(json.dumps({"ok": True} if problem is None else {"ok": False, "problem": problem}))


if __name__ == "__main__":
    main()
