"""Checks an MSK IAM token the way AWS's own Python signer (aws-msk-iam-sasl-signer-python) makes one: botocore's
SigV4QueryAuth presigning `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect` for the service
`kafka-cluster`, valid 900 seconds. The token is base64url (no padding) of that URL with a `User-Agent` parameter
appended after signing.

Usage: verify_msk_iam_token.py TOKEN REGION ACCESS_KEY_ID SECRET_ACCESS_KEY SESSION_TOKEN
Prints one JSON line: {"ok": true, "signed_at": ..., "expires": ...} or {"ok": false, "problem": ...}.
"""

import base64
import datetime
import json
import sys
import urllib.parse

import botocore.auth
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def check(token, region, access_key, secret_key, session_token):
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    if "=" in token:
        return "the token is padded; MSK's signers leave base64url padding off"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.netloc != f"kafka.{region}.amazonaws.com" or parts.path not in ("", "/"):
        return f"the URL is {parts.scheme}://{parts.netloc}{parts.path}, not https://kafka.{region}.amazonaws.com/"
    params = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    single = {name: values[0] for name, values in params.items() if len(values) == 1}
    if len(single) != len(params):
        return f"a parameter is repeated: {sorted(params)}"
    expected = {
        "Action": "kafka-cluster:Connect",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Expires": "900",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Security-Token": session_token,
    }
    for name, value in expected.items():
        if single.get(name) != value:
            return f"{name} is {single.get(name)!r}, expected {value!r}"
    if not single.get("User-Agent"):
        return "no User-Agent parameter"
    signed_at = datetime.datetime.strptime(single["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    scope = f"{access_key}/{signed_at:%Y%m%d}/{region}/kafka-cluster/aws4_request"
    if single.get("X-Amz-Credential") != scope:
        return f"X-Amz-Credential is {single.get('X-Amz-Credential')!r}, expected {scope!r}"

    # botocore signs the same request at the token's own time; the signatures must be equal.
    botocore.auth.get_current_datetime = lambda: signed_at
    request = AWSRequest(method="GET", url=f"https://kafka.{region}.amazonaws.com/",
                         params={"Action": "kafka-cluster:Connect"})
    SigV4QueryAuth(Credentials(access_key, secret_key, session_token), "kafka-cluster", region,
                   expires=900).add_auth(request)
    reference = urllib.parse.parse_qs(urllib.parse.urlsplit(request.prepare().url).query)
    if reference["X-Amz-Signature"][0] != single.get("X-Amz-Signature"):
        return "the signature is not the one botocore computes for these credentials and this time"
    return None


def main():
    token, region, access_key, secret_key, session_token = sys.argv[1:6]
    problem = check(token, region, access_key, secret_key, session_token)
    if problem:
        print(json.dumps({"ok": False, "problem": problem}))
        sys.exit(1)
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    single = {name: values[0] for name, values in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}
    signed_at = datetime.datetime.strptime(single["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    print(json.dumps({"ok": True, "signed_at": int(signed_at.timestamp()),
                      "expires": int(signed_at.timestamp()) + int(single["X-Amz-Expires"])}))


if __name__ == "__main__":
    main()
