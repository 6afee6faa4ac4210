"""Lesson 09's secured service: a tiny vault, its token helpers and its guards.

    tokens = Tokens()                          # signs and verifies short-lived JWTs (PyJWT)
    token = tokens.issue("alice", ttl=60)
    server = secured_vault(pki, tokens)        # mTLS + token check + who may read
    channel = grpc.secure_channel(f"localhost:{server.port}", client_credentials(pki, pki.alice, token))

The pieces are the lesson's exercises, solved:
- `BearerToken`, a call-credentials plugin that adds `authorization: Bearer <token>`;
- `TokenAuth`, a server interceptor that refuses a call without a valid token,
  on every call type, before the handler runs (the auth interceptor lesson 08 builds,
  checking a signed, expiring token instead of a fixed list);
- `authorize(context, allowed)`, which reads the client certificate's identity and answers
  UNAUTHENTICATED (no identity) or PERMISSION_DENIED (known, not allowed).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterable

import grpc
import jwt

from helpers import protos, tls
from helpers.servers import Server, serve

vault_pb2, vault_pb2_grpc = protos.load("vault")

SECRETS = {
    "db-password": "correct horse battery staple",
    "db-user": "vault",
    "api-key": "k-7f3a",
}


def transport_of(context: grpc.ServicerContext) -> str:
    """"ssl", "local" or "insecure": how the call reached the server."""
    kind = context.auth_context().get("transport_security_type", [b"insecure"])
    return kind[0].decode()


def certificate_identity(context: grpc.ServicerContext) -> str | None:
    """The name in the caller's client certificate, or None without one."""
    if transport_of(context) != "ssl":  # local credentials report the identity b"local"
        return None
    identities = context.peer_identities()  # None unless the client sent a certificate
    return identities[0].decode() if identities else None


def authorize(context: grpc.ServicerContext, allowed: set[str]) -> str:
    """Return the caller's certificate identity if it is in `allowed`; abort otherwise."""
    name = certificate_identity(context)
    if name is None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate: who are you?")
    if name not in allowed:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} may not read this vault")
    return name


class Vault(vault_pb2_grpc.VaultServicer):
    """A secret store. With `allowed`, only callers whose certificate names one of them get in.

    `calls` counts the calls that reached the handlers, by method name.
    """

    def __init__(self, allowed: Iterable[str] | None = None,
                 store: dict[str, str] | None = None) -> None:
        self.allowed = None if allowed is None else set(allowed)
        self.secrets = dict(SECRETS if store is None else store)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _enter(self, method: str, context: grpc.ServicerContext) -> str:
        with self._lock:
            self.calls[method] += 1
        if self.allowed is not None:
            return authorize(context, self.allowed)
        return certificate_identity(context) or ""

    def WhoAmI(self, request, context):
        name = self._enter("WhoAmI", context)
        return vault_pb2.Identity(name=name, transport=transport_of(context))

    def ListSecrets(self, request, context):
        self._enter("ListSecrets", context)
        with self._lock:
            stored = sorted(self.secrets.items())
        for name, value in stored:
            if name.startswith(request.prefix):
                yield vault_pb2.Secret(name=name, value=value)

    def PutSecrets(self, request_iterator, context):
        self._enter("PutSecrets", context)
        stored = 0
        for secret in request_iterator:
            if not secret.name:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a secret needs a name")
            with self._lock:
                self.secrets[secret.name] = secret.value
            stored += 1
        return vault_pb2.PutSecretsReply(stored=stored)


class Tokens:
    """Issues and verifies signed, expiring tokens (JWT, HS256) with PyJWT.

    The key is made at run time; whoever holds it can make tokens, so it stays on the server.
    """

    algorithm = "HS256"

    def __init__(self, key: bytes | None = None, issuer: str = "grpc-course") -> None:
        self.key = key or secrets.token_bytes(32)
        self.issuer = issuer

    def issue(self, subject: str, ttl: float = 60) -> str:
        now = int(time.time())
        claims = {"sub": subject, "iss": self.issuer, "iat": now, "exp": now + int(ttl)}
        return jwt.encode(claims, self.key, algorithm=self.algorithm)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises jwt.InvalidTokenError if forged, expired or malformed."""
        return jwt.decode(token, self.key, algorithms=[self.algorithm], issuer=self.issuer,
                          options={"require": ["exp", "sub"]})


class BearerToken(grpc.AuthMetadataPlugin):
    """Call credentials: asks `get_token()` before every call and sends it as a bearer token."""

    def __init__(self, get_token: Callable[[], str]) -> None:
        self.get_token = get_token

    def __call__(self, context: grpc.AuthMetadataContext,
                 callback: grpc.AuthMetadataPluginCallback) -> None:
        callback((("authorization", f"Bearer {self.get_token()}"),), None)


KINDS = {  # (request_streaming, response_streaming): (the handler's attribute, its factory)
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode,
            details: str) -> grpc.RpcMethodHandler:
    """A handler of the same call type as `handler` that only aborts with `code`."""

    def refuse(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(refuse, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class TokenAuth(grpc.ServerInterceptor):
    """Refuse every call, of every type, that lacks a valid bearer token: UNAUTHENTICATED."""

    def __init__(self, key: bytes, issuer: str = "grpc-course") -> None:
        self.key, self.issuer = key, issuer

    def verify(self, metadata: Iterable[tuple[str, Any]]) -> tuple[dict | None, str | None]:
        """(the token's claims, None) if the call's token is valid, else (None, what is wrong).

        PyJWT checks `exp` only when the token has one: `require` makes exp and sub compulsory,
        and `issuer=` makes iss compulsory and equal to ours.
        """
        header = dict(metadata).get("authorization", "")
        if not header.startswith("Bearer "):
            return None, "missing bearer token"
        try:
            claims = jwt.decode(header.removeprefix("Bearer "), self.key, algorithms=["HS256"],
                                issuer=self.issuer, options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            return None, "token expired"
        except jwt.InvalidTokenError as error:
            return None, f"invalid token ({error})"
        return claims, None

    def problem(self, metadata: Iterable[tuple[str, Any]]) -> str | None:
        """What is wrong with the call's token, or None if it is valid."""
        return self.verify(metadata)[1]

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: let gRPC answer UNIMPLEMENTED
            return None
        problem = self.problem(handler_call_details.invocation_metadata or ())
        if problem:
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, problem)
        return handler


class BoundTokenAuth(TokenAuth):
    """TokenAuth, and the token's subject must be the caller's client-certificate name.

    A stolen token is then useless without its owner's private key, and a certificate
    cannot borrow another user's token. The interceptor cannot see the certificate (only
    the handler's context can), so it wraps the handler and compares there, before the
    method's own code runs and before any request message is read.
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        claims, problem = self.verify(handler_call_details.invocation_metadata or ())
        if problem:
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, problem)
        subject = claims["sub"]
        attribute, make = KINDS[(handler.request_streaming, handler.response_streaming)]
        behavior = getattr(handler, attribute)

        def bound(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            name = certificate_identity(context)
            if name != subject:
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              f"the token is for {subject!r}, the client certificate for {name!r}")
            return behavior(request_or_iterator, context)

        return make(bound, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)


def mtls_server_credentials(pki: tls.Pki) -> grpc.ServerCredentials:
    """The server's certificate, and the CA it trusts for client certificates (required)."""
    return grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)],
                                       root_certificates=pki.ca.cert_pem,
                                       require_client_auth=True)


def client_credentials(pki: tls.Pki, client: tls.Certificate | None = None,
                       token: str | Callable[[], str] | None = None) -> grpc.ChannelCredentials:
    """TLS that trusts the course CA, with `client`'s certificate and a bearer token if given."""
    if client is None:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem)
    else:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem,
                                                   private_key=client.key_pem,
                                                   certificate_chain=client.cert_pem)
    if token is None:
        return credentials
    get_token = token if callable(token) else (lambda: token)
    return grpc.composite_channel_credentials(
        credentials, grpc.metadata_call_credentials(BearerToken(get_token)))


def secured_vault(pki: tls.Pki, tokens: Tokens, vault: Vault | None = None,
                  name: str = "secured-vault") -> Server:
    """The vault behind three locks: mTLS, a valid token, and an allowed identity (alice)."""
    vault = vault or Vault(allowed={"alice"})
    return serve(vault_pb2_grpc.add_VaultServicer_to_server, vault, name=name,
                 interceptors=[TokenAuth(tokens.key, tokens.issuer)],
                 credentials=mtls_server_credentials(pki))
