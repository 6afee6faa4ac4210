"""Lesson 09, TLS, mTLS and auth: helpers.tls, the secured vault, and the checks.

The checks pass on the solutions (and on correct answers written differently) and
reject the mistakes learners make with certificates and tokens.
"""

from __future__ import annotations

import datetime as dt
import os
import stat

import string
import time

import grpc
import jwt
import pytest
from conftest import WrongAnswer, fails, passes, rejects
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import serve, tls
from helpers.reference.vault import (
    KINDS, BearerToken, BoundTokenAuth, TokenAuth, Tokens, Vault, authorize, client_credentials, secured_vault,
    vault_pb2, vault_pb2_grpc,
)

ADD = vault_pb2_grpc.add_VaultServicer_to_server


@pytest.fixture(scope="module")
def pki() -> tls.Pki:
    return tls.make_pki(prefix="test-")


# --- helpers.tls --------------------------------------------------------------------

def test_the_server_certificate_names_localhost_and_the_loopback_ip(pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.server.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer == x509.load_pem_x509_certificate(pki.ca.cert_pem).subject
    ca = x509.load_pem_x509_certificate(pki.ca.cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_describe_summarizes_subject_san_issuer_and_validity(pki) -> None:
    lines = pki.server.summary().splitlines()
    assert lines[:3] == ["subject: CN=localhost", "SAN:     localhost, 127.0.0.1",
                         "issuer:  CN=test-Course CA"]
    assert lines[3].startswith("valid:   ") and lines[3].endswith("(valid)")
    assert pki.expired.summary().endswith("(EXPIRED)")
    assert "SAN:     (none)" in pki.alice.summary()
    assert "issuer:  CN=test-Other CA" in pki.mallory.summary()


def test_validity_windows(pki) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    expired = x509.load_pem_x509_certificate(pki.expired.cert_pem)
    assert expired.not_valid_after_utc < now
    server = x509.load_pem_x509_certificate(pki.server.cert_pem)
    assert server.not_valid_before_utc < now < server.not_valid_after_utc


def test_keys_live_in_a_private_temporary_folder(pki) -> None:
    folder = tls.folder()
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert pki.alice.key_path.parent == folder
    assert stat.S_IMODE(os.stat(pki.alice.key_path).st_mode) == 0o600
    assert pki.alice.key_path.read_bytes() == pki.alice.key_pem
    assert pki.ca.cert_path.read_bytes() == pki.ca.cert_pem
    assert b"PRIVATE KEY" not in pki.ca.cert_pem
    assert "key_pem" not in repr(pki.alice)


def test_no_ca_key_is_written(pki) -> None:
    assert not (pki.ca.cert_path.with_suffix(".key")).exists()
    assert not any(path.name.endswith("CA.key") for path in tls.folder().iterdir())


def test_a_killed_process_leaves_a_folder_the_next_one_removes() -> None:
    import signal
    import subprocess
    import sys

    code = ("import os, signal; from helpers import tls; tls.make_pki(); print(tls.folder(), "
            "flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == -signal.SIGKILL
    folder = out.stdout.strip()
    assert folder and os.path.exists(folder)  # SIGKILL skipped the exit handler
    removed = tls.remove_stale_folders()
    assert not os.path.exists(folder) and any(str(path) == folder for path in removed)
    assert tls.folder().exists()  # ours, alive, is kept


def test_the_folder_is_removed_when_the_process_exits(tmp_path) -> None:
    import subprocess
    import sys

    code = "from helpers import tls; tls.make_pki(); print(tls.folder())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    folder = out.stdout.strip()
    assert folder and not os.path.exists(folder)


# --- the reference secured vault ----------------------------------------------------

def call(channel: grpc.Channel, method: str):
    stub = vault_pb2_grpc.VaultStub(channel)
    if method == "WhoAmI":
        return stub.WhoAmI(vault_pb2.WhoAmIRequest(), timeout=5)
    return list(stub.ListSecrets(vault_pb2.ListSecretsRequest(), timeout=5))


REFUSALS = [
    ("no token", "alice", None, grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"),
    ("a wrong token", "alice", "wrong", grpc.StatusCode.UNAUTHENTICATED, "Signature"),
    ("an expired token", "alice", "expired", grpc.StatusCode.UNAUTHENTICATED, "expired"),
    ("not a JWT", "alice", "garbage", grpc.StatusCode.UNAUTHENTICATED, "invalid token"),
    ("no client certificate", None, "good", grpc.StatusCode.UNAVAILABLE, "Socket closed"),
    ("another CA's certificate", "mallory", "good", grpc.StatusCode.UNAVAILABLE, ""),
    ("a known but not allowed client", "bob", "good", grpc.StatusCode.PERMISSION_DENIED,
     "bob may not"),
]


@pytest.mark.parametrize("method", ["WhoAmI", "ListSecrets"])
@pytest.mark.parametrize("case", REFUSALS, ids=[case[0] for case in REFUSALS])
def test_every_method_of_the_secured_vault_refuses(pki, case, method) -> None:
    _, client, token_kind, code, fragment = case
    tokens = Tokens()
    token = {None: None, "good": tokens.issue("alice"), "wrong": Tokens().issue("alice"),
             "expired": tokens.issue("alice", ttl=-30), "garbage": "let-me-in"}[token_kind]
    vault = Vault(allowed={"alice"})
    with secured_vault(pki, tokens, vault, name="test-secured") as server:
        certificate = getattr(pki, client) if client else None
        credentials = client_credentials(pki, certificate, token)
        with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
            with pytest.raises(grpc.RpcError) as error:
                call(channel, method)
        reached = sum(vault.calls.values())
        assert call_works(server, pki, tokens)  # the server itself is fine
    assert error.value.code() == code
    assert fragment in error.value.details()
    # Only the authorization check runs in the handler; every other refusal comes first.
    assert reached == (1 if code == grpc.StatusCode.PERMISSION_DENIED else 0)


def call_works(server, pki, tokens) -> bool:
    credentials = client_credentials(pki, pki.alice, tokens.issue("alice"))
    with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
        return call(channel, "WhoAmI").name == "alice"


def test_the_secured_vault_serves_alice_on_both_methods(pki) -> None:
    tokens = Tokens()
    with secured_vault(pki, tokens, name="test-secured") as server:
        credentials = client_credentials(pki, pki.alice, lambda: tokens.issue("alice"))
        with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
            assert call(channel, "WhoAmI") == vault_pb2.Identity(name="alice", transport="ssl")
            assert [s.name for s in call(channel, "ListSecrets")] == [
                "api-key", "db-password", "db-user"]


def test_tokens_verify_and_reject() -> None:
    tokens = Tokens()
    assert tokens.verify(tokens.issue("alice"))["sub"] == "alice"
    with pytest.raises(jwt.ExpiredSignatureError):
        tokens.verify(tokens.issue("alice", ttl=-30))
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.verify(Tokens().issue("alice"))
    with pytest.raises(jwt.InvalidIssuerError):
        tokens.verify(Tokens(key=tokens.key, issuer="elsewhere").issue("alice"))


@pytest.fixture(scope="module")
def token_server():
    tokens, vault = Tokens(), Vault()
    with serve(ADD, vault, name="test-token-server", interceptors=[TokenAuth(tokens.key)],
               credentials=grpc.local_server_credentials()) as server:
        with grpc.secure_channel(server.target, grpc.local_channel_credentials()) as channel:
            yield tokens, vault, vault_pb2_grpc.VaultStub(channel)


def unsigned_token(claims: dict) -> str:
    return jwt.encode(claims, None, algorithm="none")


@pytest.mark.filterwarnings("ignore:The HMAC key")  # the HS512 token below: short key on purpose
def test_a_token_with_algorithm_none_or_the_wrong_claims_is_refused(token_server) -> None:
    tokens, vault, stub = token_server
    now = int(time.time())
    bad = [
        unsigned_token({"sub": "alice", "iss": "grpc-course", "exp": now + 60}),
        jwt.encode({"sub": "alice", "iss": "grpc-course"}, tokens.key),  # never expires
        jwt.encode({"iss": "grpc-course", "exp": now + 60}, tokens.key),  # no subject
        jwt.encode({"sub": "alice", "exp": now + 60}, tokens.key, algorithm="HS512"),
    ]
    before = sum(vault.calls.values())
    for token in bad:
        with pytest.raises(grpc.RpcError) as error:
            list(stub.ListSecrets(vault_pb2.ListSecretsRequest(), timeout=5,
                                  metadata=[("authorization", f"Bearer {token}")]))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
        assert error.value.details().startswith("invalid token")
    assert sum(vault.calls.values()) == before


HEADER_TEXT = st.text(alphabet=string.printable.strip() + " ", max_size=300)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(HEADER_TEXT, HEADER_TEXT.map(lambda text: "Bearer " + text)),
       streaming=st.booleans())
def test_any_authorization_header_gets_unauthenticated_never_unknown(token_server, header,
                                                                     streaming) -> None:
    _, _, stub = token_server
    metadata = [("authorization", header)]
    with pytest.raises(grpc.RpcError) as error:
        if streaming:
            list(stub.ListSecrets(vault_pb2.ListSecretsRequest(), timeout=5, metadata=metadata))
        else:
            stub.WhoAmI(vault_pb2.WhoAmIRequest(), timeout=5, metadata=metadata)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, error.value.details()


# --- correct answers -----------------------------------------------------------------

def tls_server(pki):
    credentials = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)])
    return serve(ADD, Vault(), name="tls-vault", credentials=credentials)


def tls_channel(target, pki):
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert_pem))


def tls_channel_from_files(target, pki):
    """Reads the CA certificate from its file, as a deployed client would."""
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(
        pki.ca.cert_path.read_bytes()))


def mtls_server_credentials(pki):
    return grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)],
                                       root_certificates=pki.ca.cert_pem,
                                       require_client_auth=True)


def mtls_channel(target, pki, who):
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(
        pki.ca.cert_pem, private_key=who.key_pem, certificate_chain=who.cert_pem))


def authorize_with_auth_context(context, allowed):
    """Reads the common name from auth_context() instead of peer_identities()."""
    names = context.auth_context().get("x509_common_name")
    if not names:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you?")
    name = names[0].decode()
    if name not in allowed:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not allowed")
    return name


def token_channel(target, get_token):
    call_credentials = grpc.metadata_call_credentials(BearerToken(get_token))
    return grpc.secure_channel(target, grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), call_credentials))


def token_channel_with_a_function(target, get_token):
    """gRPC accepts any callable as the plugin."""

    def plugin(context, callback):
        callback([("authorization", "Bearer " + get_token())], None)

    return grpc.secure_channel(target, grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), grpc.metadata_call_credentials(plugin)))


@pytest.mark.parametrize("exercise_id, answer", [
    ("9.1", (tls_server, tls_channel)),
    ("9.1", (tls_server, tls_channel_from_files)),
    ("9.2", (mtls_server_credentials, mtls_channel)),
    ("9.3", (authorize,)),
    ("9.3", (authorize_with_auth_context,)),
    ("9.4", (token_channel,)),
    ("9.4", (token_channel_with_a_function,)),
    ("9.5", (TokenAuth,)),
    ("9.6", (BoundTokenAuth,)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_correct_answers_pass(exercise_id, answer, capsys) -> None:
    passes(capsys, exercise_id, *answer)


def unsolved(*args, **kwargs):
    raise NotImplementedError("Exercise 9.x: not solved yet")


@pytest.mark.parametrize("exercise_id, arity", [("9.1", 2), ("9.2", 2), ("9.3", 1), ("9.4", 1)])
def test_unsolved_answers_fail(exercise_id, arity, capsys) -> None:
    assert "not solved yet" in fails(capsys, exercise_id, *[unsolved] * arity)


class UnsolvedTokenAuth(grpc.ServerInterceptor):
    def __init__(self, key):
        self.key = key

    def intercept_service(self, continuation, handler_call_details):
        raise NotImplementedError("Exercise 9.5: not solved yet")


def test_an_unsolved_interceptor_fails(capsys) -> None:
    fails(capsys, "9.5", UnsolvedTokenAuth)


# --- wrong answers -------------------------------------------------------------------

def plaintext_server(pki):
    return serve(ADD, Vault(), name="tls-vault")


def server_with_the_wrong_certificate(pki):
    """Presents the other CA's server certificate."""
    credentials = grpc.ssl_server_credentials([(pki.other_server.key_pem,
                                                pki.other_server.cert_pem)])
    return serve(ADD, Vault(), name="tls-vault", credentials=credentials)


def insecure_channel(target, pki):
    return grpc.insecure_channel(target)


def channel_trusting_the_other_ca(target, pki):
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(pki.other_ca.cert_pem))


def channel_trusting_both_cas(target, pki):
    roots = pki.ca.cert_pem + pki.other_ca.cert_pem
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots))


def mtls_without_requiring(pki):
    return grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)],
                                       root_certificates=pki.ca.cert_pem)


def mtls_trusting_the_other_ca(pki):
    return grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)],
                                       root_certificates=pki.other_ca.cert_pem,
                                       require_client_auth=True)


def mtls_channel_without_a_certificate(target, pki, who):
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(pki.ca.cert_pem))


def mtls_channel_always_alice(target, pki, who):
    return mtls_channel(target, pki, pki.alice)


def identity_of(context):
    return context.peer_identities()[0].decode()


def authorize_denies_everything_as_permission(context, allowed):
    """PERMISSION_DENIED where UNAUTHENTICATED belongs."""
    identities = context.peer_identities()
    if not identities or identities[0].decode() not in allowed:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not allowed")
    return identities[0].decode()


def authorize_unauthenticated_for_everyone(context, allowed):
    identities = context.peer_identities()
    if not identities or identities[0].decode() not in allowed:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "not allowed")
    return identities[0].decode()


def authorize_by_substring(context, allowed):
    identities = context.peer_identities()
    if not identities:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you?")
    name = identities[0].decode()
    if not any(who in name for who in allowed):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not allowed")
    return name


def authorize_by_metadata(context, allowed):
    """Trusts the x-client-id header, as the seed's rate limiter identifies clients."""
    claimed = dict(context.invocation_metadata()).get("x-client-id")
    name = claimed or (context.peer_identities() or [b""])[0].decode()
    if not name:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you?")
    if name not in allowed:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not allowed")
    return name


def authorize_by_peer_address(context, allowed):
    """Compares the wrong field: the peer's address, not its certificate."""
    name = context.peer()
    if name not in allowed:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not allowed")
    return name


def authorize_assuming_a_certificate(context, allowed):
    name = identity_of(context)  # peer_identities() is None without a certificate
    if name not in allowed:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not allowed")
    return name


def authorize_only_alice(context, allowed):
    identities = context.peer_identities()
    if not identities:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you?")
    if identities[0] != b"alice":
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return "alice"


class CachedToken(grpc.AuthMetadataPlugin):
    """Asks for the token once, in __init__."""

    def __init__(self, get_token):
        self.token = get_token()

    def __call__(self, context, callback):
        callback((("authorization", f"Bearer {self.token}"),), None)


class NoBearerPrefix(grpc.AuthMetadataPlugin):
    def __init__(self, get_token):
        self.get_token = get_token

    def __call__(self, context, callback):
        callback((("authorization", self.get_token()),), None)


class CapitalizedKey(NoBearerPrefix):
    def __call__(self, context, callback):
        callback((("Authorization", f"Bearer {self.get_token()}"),), None)


def channel_with(plugin_class):
    def make_channel(target, get_token):
        return grpc.secure_channel(target, grpc.composite_channel_credentials(
            grpc.local_channel_credentials(),
            grpc.metadata_call_credentials(plugin_class(get_token))))
    return make_channel


def insecure_token_channel(target, get_token):
    """gRPC has no way to put call credentials on an insecure channel: the token is dropped."""
    return grpc.insecure_channel(target)


class UnaryOnlyTokenAuth(TokenAuth):
    """Wraps unary-unary handlers only: streams pass unchecked."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.response_streaming or handler.request_streaming:
            return handler
        return super().intercept_service(lambda details: handler, handler_call_details)


class PermissionDeniedTokenAuth(TokenAuth):
    def intercept_service(self, continuation, handler_call_details):
        from helpers.reference.vault import refusal

        handler = continuation(handler_call_details)
        problem = self.problem(handler_call_details.invocation_metadata or ())
        if handler is not None and problem:
            return refusal(handler, grpc.StatusCode.PERMISSION_DENIED, problem)
        return handler


class UnverifiedTokenAuth(TokenAuth):
    """Decodes the token without checking its signature."""

    def problem(self, metadata):
        header = dict(metadata).get("authorization", "")
        try:
            jwt.decode(header.removeprefix("Bearer "), options={"verify_signature": False})
        except jwt.InvalidTokenError as error:
            return f"invalid token ({error})"
        return None if header.startswith("Bearer ") else "missing bearer token"


class NoExpiryTokenAuth(TokenAuth):
    def problem(self, metadata):
        header = dict(metadata).get("authorization", "")
        if not header.startswith("Bearer "):
            return "missing bearer token"
        try:
            jwt.decode(header[7:], self.key, algorithms=["HS256"], options={"verify_exp": False})
        except jwt.InvalidTokenError as error:
            return f"invalid token ({error})"
        return None


class PresenceOnlyTokenAuth(TokenAuth):
    def problem(self, metadata):
        return None if dict(metadata).get("authorization") else "missing token"


def channel_overriding_the_name(target, pki):
    """Sets ssl_target_name_override to the certificate's name: the host check is off."""
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(pki.ca.cert_pem),
                               options=[("grpc.ssl_target_name_override", "localhost")])


def mtls_channel_overriding_the_name(target, pki, who):
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(
        pki.ca.cert_pem, private_key=who.key_pem, certificate_chain=who.cert_pem),
        options=[("grpc.ssl_target_name_override", "localhost")])


class TutorialTokenAuth(TokenAuth):
    """The common tutorial's refusal: a unary-unary abort handler for every method."""

    def intercept_service(self, continuation, handler_call_details):
        problem = self.problem(handler_call_details.invocation_metadata or ())
        if problem:
            def abort(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)
            return grpc.unary_unary_rpc_method_handler(abort)
        return continuation(handler_call_details)


def decoding_with(**options):
    """A TokenAuth whose only check is jwt.decode(token, key, algorithms=['HS256'], **options)."""

    class Decoding(TokenAuth):
        def problem(self, metadata):
            header = dict(metadata).get("authorization", "")
            if not header.startswith("Bearer "):
                return "missing bearer token"
            try:
                jwt.decode(header[7:], self.key, algorithms=["HS256"], **options)
            except jwt.InvalidTokenError as error:
                return f"invalid token ({error})"
            return None

    return Decoding


class BindingTokenAuth(TokenAuth):
    """A 9.6 answer: wraps the handler; `same(subject, context)` decides the binding."""

    code = grpc.StatusCode.UNAUTHENTICATED
    kinds = KINDS

    def same(self, subject, context):
        identities = context.peer_identities() if context.auth_context().get(
            "transport_security_type") == [b"ssl"] else None
        return bool(identities) and identities[0].decode() == subject

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        claims, problem = self.verify(handler_call_details.invocation_metadata or ())
        if problem:
            from helpers.reference.vault import refusal
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, problem)
        key = (handler.request_streaming, handler.response_streaming)
        if key not in self.kinds:
            return handler
        attribute, make = self.kinds[key]
        behavior = getattr(handler, attribute)

        def bound(request, context):
            if not self.same(claims["sub"], context):
                context.abort(self.code, "the token is not for this certificate")
            return behavior(request, context)

        return make(bound, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)


class BoundViaAuthContext(BindingTokenAuth):
    """Correct too: reads the certificate's common name from auth_context()."""

    def same(self, subject, context):
        return context.auth_context().get("x509_common_name") == [subject.encode()]


class PrefixBound(BindingTokenAuth):
    def same(self, subject, context):
        identities = context.peer_identities() or [b""]
        return identities[0].decode().startswith(subject)


class CaseInsensitiveBound(BindingTokenAuth):
    def same(self, subject, context):
        identities = context.peer_identities() or [b""]
        return identities[0].decode().lower() == subject.lower()


class UnaryOnlyBound(BindingTokenAuth):
    kinds = {(False, False): KINDS[(False, False)]}


class PermissionDeniedBound(BindingTokenAuth):
    code = grpc.StatusCode.PERMISSION_DENIED


class NoExpBound(BindingTokenAuth):
    def verify(self, metadata):
        header = dict(metadata).get("authorization", "")
        if not header.startswith("Bearer "):
            return None, "missing bearer token"
        try:
            return jwt.decode(header[7:], self.key, algorithms=["HS256"]), None
        except jwt.InvalidTokenError as error:
            return None, f"invalid token ({error})"


class LocalTrustingBound(BindingTokenAuth):
    """Takes peer_identities() for a certificate name whatever the transport."""

    def same(self, subject, context):
        identities = context.peer_identities()
        return bool(identities) and identities[0].decode() == subject


class CrashingMessageBound(BindingTokenAuth):
    """Aborts with the right code but no message of its own: abort(code, None) raises."""

    def same(self, subject, context):
        if not super().same(subject, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, None)
        return True


class UnknownMethodCrashBound(BindingTokenAuth):
    """Refuses before asking whether the method exists: handler None meets .request_streaming."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        claims, problem = self.verify(handler_call_details.invocation_metadata or ())
        if problem:
            from helpers.reference.vault import refusal
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, problem)
        return super().intercept_service(lambda details: handler, handler_call_details)


class UnknownMethodCrashTokenAuth(TokenAuth):
    """Refuses before asking whether the method exists: handler None meets .request_streaming."""

    def intercept_service(self, continuation, handler_call_details):
        from helpers.reference.vault import refusal

        handler = continuation(handler_call_details)
        problem = self.problem(handler_call_details.invocation_metadata or ())
        return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, problem) if problem else handler


class ThreeKindsTokenAuth(TokenAuth):
    """A refusal for the vault's three call types only: no bidirectional stream."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        problem = self.problem(handler_call_details.invocation_metadata or ())
        if problem is None:
            return handler

        def refuse(request_or_iterator, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

        make = {(False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                }[(handler.request_streaming, handler.response_streaming)]
        return make(refuse, handler.request_deserializer, handler.response_serializer)


class StreamStreamRefusalTokenAuth(TokenAuth):
    """Correct too: one stream-stream refusal suits every method."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        problem = self.problem(handler_call_details.invocation_metadata or ())
        if handler is None or problem is None:
            return handler

        def refuse(request_iterator, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

        return grpc.stream_stream_rpc_method_handler(refuse)


WRONG_ANSWERS: list[WrongAnswer] = [
    WrongAnswer("9.6", "checks the token but never compares it with the certificate",
                (TokenAuth,), says="alice's certificate with bob's valid token was let in"),
    WrongAnswer("9.6", "compares a prefix of the name", (PrefixBound,),
                says="a valid token for 'ali' was let in"),
    WrongAnswer("9.6", "compares names without case", (CaseInsensitiveBound,),
                says="a valid token for 'Alice' was let in"),
    WrongAnswer("9.6", "binds unary calls only", (UnaryOnlyBound,),
                says="was let in on ListSecrets (server streaming)"),
    WrongAnswer("9.6", "PERMISSION_DENIED for a token that is not the certificate's",
                (PermissionDeniedBound,), says="expected UNAUTHENTICATED"),
    WrongAnswer("9.6", "accepts a token without exp", (NoExpBound,),
                says="her token without exp was let in"),
    WrongAnswer("9.6", "takes local credentials' peer identity for a certificate name",
                (LocalTrustingBound,), says="a valid token for 'local' over local credentials"),
    WrongAnswer("9.6", "aborts with no message of its own", (CrashingMessageBound,),
                says="gRPC's report of a crash"),
    WrongAnswer("9.6", "refuses an unknown method by crashing", (UnknownMethodCrashBound,),
                says="calling a method the server does not have"),
    WrongAnswer("9.5", "refuses an unknown method by crashing", (UnknownMethodCrashTokenAuth,),
                says="calling a method the server does not have"),
    WrongAnswer("9.5", "a refusal for three call types, none for bidirectional streams",
                (ThreeKindsTokenAuth,), says="RouteChat (bidirectional streaming)"),
    WrongAnswer("9.1", "client sets grpc.ssl_target_name_override to the certificate's name",
                (tls_server, channel_overriding_the_name), says="ssl_target_name_override"),
    WrongAnswer("9.2", "client sets grpc.ssl_target_name_override",
                (mtls_server_credentials, mtls_channel_overriding_the_name),
                says="names only localhost"),
    WrongAnswer("9.5", "the tutorial's unary-unary refusal for every method",
                (TutorialTokenAuth,), says="PutSecrets (client streaming, an empty stream)"),
    WrongAnswer("9.5", "jwt.decode with algorithms only: a token without exp never expires",
                (decoding_with(),), says="with no exp claim (it would never expire) was let in"),
    WrongAnswer("9.5", "requires exp but not sub", (decoding_with(options={"require": ["exp"]}),),
                says="with no sub claim (for nobody) was let in"),
    WrongAnswer("9.5", "requires exp and sub, ignores the issuer",
                (decoding_with(options={"require": ["exp", "sub"]}),),
                says="from another issuer was let in"),

    WrongAnswer("9.1", "starts the server without credentials (plaintext)",
                (plaintext_server, tls_channel), says="your server answers in plaintext"),
    WrongAnswer("9.1", "presents a certificate another CA signed",
                (server_with_the_wrong_certificate, tls_channel),
                says="could not connect to your server"),
    WrongAnswer("9.1", "client uses an insecure channel",
                (tls_server, insecure_channel), says="a call on your channel to a TLS server"),
    WrongAnswer("9.1", "client trusts the other CA",
                (tls_server, channel_trusting_the_other_ca),
                says="a call on your channel to a TLS server"),
    WrongAnswer("9.1", "client trusts both CAs",
                (tls_server, channel_trusting_both_cas),
                says="accepted a server whose certificate was signed by another CA"),
    WrongAnswer("9.2", "require_client_auth left False",
                (mtls_without_requiring, mtls_channel), says="require_client_auth=True"),
    WrongAnswer("9.2", "server trusts the other CA for client certificates",
                (mtls_trusting_the_other_ca, mtls_channel),
                says="must trust pki.ca for client certificates"),
    WrongAnswer("9.2", "client sends no certificate",
                (mtls_server_credentials, mtls_channel_without_a_certificate),
                says="send the client's key and certificate"),
    WrongAnswer("9.2", "client always presents alice's certificate",
                (mtls_server_credentials, mtls_channel_always_alice),
                says="the client name the server read"),
    WrongAnswer("9.3", "PERMISSION_DENIED where UNAUTHENTICATED belongs",
                (authorize_denies_everything_as_permission,),
                says="got PERMISSION_DENIED (not allowed) on WhoAmI (unary), expected "
                "UNAUTHENTICATED"),
    WrongAnswer("9.3", "UNAUTHENTICATED for a known caller",
                (authorize_unauthenticated_for_everyone,),
                says="bob (known, not allowed) got UNAUTHENTICATED"),
    WrongAnswer("9.3", "matches a part of the name", (authorize_by_substring,),
                says="compare the whole name"),
    WrongAnswer("9.3", "trusts an x-client-id header", (authorize_by_metadata,),
                says="trust only the certificate"),
    WrongAnswer("9.3", "compares the peer address instead of the certificate",
                (authorize_by_peer_address,), says="alice, who is allowed, got PERMISSION_DENIED"),
    WrongAnswer("9.3", "assumes peer_identities() is never None",
                (authorize_assuming_a_certificate,), says="UNKNOWN, because the servicer raised"),
    WrongAnswer("9.3", "hard-codes alice instead of using allowed", (authorize_only_alice,),
                says="not a fixed name"),
    WrongAnswer("9.4", "asks for the token once, in __init__", (channel_with(CachedToken),),
                says="still sent the old one"),
    WrongAnswer("9.4", "sends the token without 'Bearer '", (channel_with(NoBearerPrefix),),
                says="expected 'Bearer <token>'"),
    WrongAnswer("9.4", "capitalized metadata key", (channel_with(CapitalizedKey),),
                says="metadata keys must be lowercase"),
    WrongAnswer("9.4", "insecure channel, so no token travels", (insecure_token_channel,),
                says="call credentials need a secure channel"),
    WrongAnswer("9.5", "checks unary calls only", (UnaryOnlyTokenAuth,),
                says="was let in on ListSecrets (server streaming)"),
    WrongAnswer("9.5", "PERMISSION_DENIED for a missing token", (PermissionDeniedTokenAuth,),
                says="expected UNAUTHENTICATED"),
    WrongAnswer("9.5", "does not verify the signature", (UnverifiedTokenAuth,),
                says="a call with a token signed with another key was let in"),
    WrongAnswer("9.5", "ignores the expiry", (NoExpiryTokenAuth,),
                says="a call with an expired token was let in"),
    WrongAnswer("9.5", "only checks that a header is present", (PresenceOnlyTokenAuth,),
                says="was let in"),
]


@pytest.mark.parametrize("wrong", WRONG_ANSWERS, ids=str)
def test_wrong_answers_are_rejected(wrong: WrongAnswer, capsys) -> None:
    rejects(capsys, wrong)


@pytest.mark.parametrize("answer", [BindingTokenAuth, BoundViaAuthContext], ids=str)
def test_other_correct_bindings_pass(answer, capsys) -> None:
    passes(capsys, "9.6", answer)


def test_a_stream_stream_refusal_for_every_method_passes(capsys) -> None:
    passes(capsys, "9.5", StreamStreamRefusalTokenAuth)


@pytest.mark.parametrize("exercise_id", ["9.1", "9.2", "9.3", "9.4", "9.5", "9.6"])
def test_every_exercise_has_four_wrong_answers(exercise_id: str) -> None:
    assert sum(wrong.exercise == exercise_id for wrong in WRONG_ANSWERS) >= 4
