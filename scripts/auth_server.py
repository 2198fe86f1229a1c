"""The local stack's identity provider and registry front, for the OAuth and HTTPS paths of the tests.

- An OAuth 2.0 token endpoint (client credentials grant, RFC 6749 section 4.4) that issues RS256-signed JWTs, and
  the JWKS (RFC 7517) that verifies them: Kafka's OAuthBearerValidatorCallbackHandler validates the broker's
  OAUTHBEARER logins against it, as a broker set up for Confluent Cloud-style OAuth does.
- An HTTPS front for the Schema Registry that requires HTTP Basic credentials or a bearer token from the endpoint
  above, as Confluent Cloud's registry does, and forwards to the registry's plain HTTP port.

Uses only the standard library and `cryptography` (in the stack's venv as a dependency of moto).
"""

import argparse
import base64
import http.client
import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_ID = "ebconnect-stack"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def integer_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


class Issuer:
    def __init__(self, url: str, audience: str, lifetime: int):
        self.url = url
        self.audience = audience
        self.lifetime = lifetime
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "kid": KEY_ID, "use": "sig", "alg": "RS256",
                          "n": b64url(integer_bytes(numbers.n)), "e": b64url(integer_bytes(numbers.e))}]}

    def token(self, subject: str, scope: str) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
        claims = {"iss": self.url, "sub": subject, "aud": self.audience, "iat": now, "nbf": now,
                  "exp": now + self.lifetime, "jti": secrets.token_hex(8)}
        if scope:
            claims["scope"] = scope
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def verifies(self, token: str) -> bool:
        try:
            header, claims, signature = token.split(".")
            self.key.public_key().verify(b64url_decode(signature), f"{header}.{claims}".encode(),
                                         padding.PKCS1v15(), hashes.SHA256())
            payload = json.loads(b64url_decode(claims))
        except (ValueError, InvalidSignature):
            return False
        return payload.get("aud") == self.audience and payload.get("exp", 0) > time.time()


def basic_credentials(header: str):
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)


def answer(handler, status: int, body: dict, extra_headers=()):
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in extra_headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def identity_provider(issuer: Issuer, client_id: str, client_secret: str):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            print(f"idp {self.address_string()} {fmt % args}", flush=True)

        def do_GET(self):
            if self.path == "/jwks":
                answer(self, 200, issuer.jwks())
            else:
                answer(self, 404, {"error": "not_found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            if self.path != "/token":
                return answer(self, 404, {"error": "not_found"})
            if form.get("grant_type") != ["client_credentials"]:
                return answer(self, 400, {"error": "unsupported_grant_type"})
            credentials = basic_credentials(self.headers.get("Authorization", "")) or (
                form.get("client_id", [""])[0], form.get("client_secret", [""])[0])
            if credentials != (client_id, client_secret):
                return answer(self, 401, {"error": "invalid_client"})
            scope = form.get("scope", [""])[0]
            answer(self, 200, {"access_token": issuer.token(client_id, scope), "token_type": "Bearer",
                               "expires_in": issuer.lifetime})

    return Handler


def registry_front(issuer: Issuer, upstream: str, user: str, password: str):
    upstream = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            print(f"registry-front {self.address_string()} {fmt % args}", flush=True)

        def authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                return issuer.verifies(header[7:])
            return basic_credentials(header) == (user, password)

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if not self.authorized():
                return answer(self, 401, {"error_code": 401, "message": "Unauthorized"},
                              [("WWW-Authenticate", 'Basic realm="schema-registry"')])
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            headers = {name: value for name, value in self.headers.items()
                       if name.lower() not in ("authorization", "host", "connection")}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = forward

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idp-port", type=int, required=True)
    parser.add_argument("--front-port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--basic-user", required=True)
    parser.add_argument("--basic-password", required=True)
    parser.add_argument("--token-lifetime", type=int, default=3600)
    args = parser.parse_args()

    issuer = Issuer(f"http://127.0.0.1:{args.idp_port}", args.audience, args.token_lifetime)
    idp = http.server.ThreadingHTTPServer(("127.0.0.1", args.idp_port),
                                          identity_provider(issuer, args.client_id, args.client_secret))
    front = http.server.ThreadingHTTPServer(("127.0.0.1", args.front_port),
                                            registry_front(issuer, args.upstream, args.basic_user,
                                                           args.basic_password))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.certificate, args.key)
    front.socket = context.wrap_socket(front.socket, server_side=True)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    print(f"identity provider on {args.idp_port}, registry front on {args.front_port}", flush=True)
    idp.serve_forever()


if __name__ == "__main__":
    main()
