"""Checks for lesson 09, TLS, mTLS and auth.

Every check makes its own certificates (`tls.make_pki`) and its own token key, so an
answer that uses the notebook's globals instead of its arguments is caught. Servers
report what they saw (the transport, the client certificate's name, the token that
arrived, how many calls reached the handlers), so the checks verify the server side.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, NamedTuple

import grpc
import jwt

from helpers import tls
from helpers.checks.core import Mismatch, describe_rpc_error, exercise, expect, expect_equal
from helpers.reference.vault import TokenAuth, Tokens, Vault, vault_pb2, vault_pb2_grpc
from helpers.reference.routeguide import (
    RouteGuide, make_features, routeguide_pb2, routeguide_pb2_grpc,
)
from helpers.servers import serve

LESSON = "09_tls_auth"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
ADD = vault_pb2_grpc.add_VaultServicer_to_server
Metadata = list[tuple[str, str]]


def _call(channel: grpc.Channel, method: str,
          metadata: Metadata | None = None) -> tuple[Any, grpc.RpcError | None]:
    """Call WhoAmI or ListSecrets with a short deadline: (reply or list of replies, error)."""
    stub = vault_pb2_grpc.VaultStub(channel)
    try:
        if method == "WhoAmI":
            return stub.WhoAmI(vault_pb2.WhoAmIRequest(), timeout=5, metadata=metadata), None
        if method == "PutSecrets":  # an empty client stream: no request message ever comes
            return stub.PutSecrets(iter([]), timeout=5, metadata=metadata), None
        return list(stub.ListSecrets(vault_pb2.ListSecretsRequest(), timeout=5,
                                     metadata=metadata)), None
    except grpc.RpcError as error:
        return None, error


KIND = {"WhoAmI": "WhoAmI (unary)", "ListSecrets": "ListSecrets (server streaming)",
        "PutSecrets": "PutSecrets (client streaming, an empty stream)"}
METHODS = list(KIND)


def _who(channel: grpc.Channel, what: str, advice: str) -> Any:
    reply, error = _call(channel, "WhoAmI")
    if error is not None:
        raise Mismatch(f"{what} failed with {describe_rpc_error(error)}: {advice}")
    return reply


def _tls_client(target: str, pki: tls.Pki, client: tls.Certificate | None = None) -> grpc.Channel:
    if client is None:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(pki.ca.cert_pem))
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(
        pki.ca.cert_pem, private_key=client.key_pem, certificate_chain=client.cert_pem))


def _tls_server(certificate: tls.Certificate, name: str):
    credentials = grpc.ssl_server_credentials([(certificate.key_pem, certificate.cert_pem)])
    return serve(ADD, Vault(), name=name, credentials=credentials)


def _expect_name_checked(make_channel: Callable[[str], grpc.Channel], pki: tls.Pki,
                         server_only: bool) -> None:
    """The learner's channel must refuse a certificate that does not name the host it dialled."""
    for named, dialled in [("localhost", "127.0.0.1"), ("127.0.0.1", "localhost")]:
        certificate = pki.ca.issue(named, hosts=[named], file_name=f"check-only-{named}")
        key_pair = [(certificate.key_pem, certificate.cert_pem)]
        credentials = (grpc.ssl_server_credentials(key_pair) if server_only else
                       grpc.ssl_server_credentials(key_pair, root_certificates=pki.ca.cert_pem,
                                                   require_client_auth=True))
        with serve(ADD, Vault(), name="check-name", credentials=credentials) as server:
            with make_channel(f"{dialled}:{server.port}") as channel:
                _, error = _call(channel, "WhoAmI")
        expect(error is not None,
               f"your channel dialled {dialled} and accepted a certificate that names only "
               f"{named}: it must check that the certificate names the host it dialled (is "
               "grpc.ssl_target_name_override set? It turns that check off)")


@exercise(
    "9.1",
    "A TLS server and a client that trusts it",
    notebook=LESSON,
    hint="The server side needs its certificate and private key; the client side needs only "
    "the certificate of the authority that signed it. Both come from the pki argument.",
    second_hint="The server's credentials take (private key, certificate chain) pairs; the "
    "client's take the certificates it trusts as roots. Which of pki's certificates plays each "
    "part? And leave the client's check of the host name as it is: no channel option needed.",
)
def tls_server_and_client(start_server: Callable, make_channel: Callable) -> str:
    pki = tls.make_pki(prefix="check91-")
    server = start_server(pki)
    expect(hasattr(server, "port") and hasattr(server, "stop"),
           f"tls_server(pki) returned {server!r}; return the server that serve(...) started")
    try:
        for host in ["localhost", "127.0.0.1"]:
            target = f"{host}:{server.port}"
            with _tls_client(target, pki) as channel:
                reply, error = _call(channel, "WhoAmI")
            if error is not None:
                with grpc.insecure_channel(target) as plain:
                    _, plain_error = _call(plain, "WhoAmI")
                expect(plain_error is not None,
                       "your server answers in plaintext: start it with credentials= "
                       "(grpc.ssl_server_credentials), not without")
                raise Mismatch(f"a client that trusts pki.ca could not connect to your server "
                               f"at {host} ({describe_rpc_error(error)}): present pki.server, "
                               "the certificate pki.ca signed for localhost and 127.0.0.1")
            expect_equal(reply.transport, "ssl", "the transport your server saw")
    finally:
        server.stop()

    with _tls_server(pki.server, "check91-vault") as reference:
        with make_channel(f"localhost:{reference.port}", pki) as channel:
            reply = _who(channel, "a call on your channel to a TLS server whose certificate "
                         "pki.ca signed", "use grpc.secure_channel with "
                         "ssl_channel_credentials(root_certificates=the course CA)")
        expect_equal(reply.transport, "ssl", "the transport the server saw from your channel")
    for impostor, who in [(pki.other_server, "another CA (pki.other_ca)"),
                          (pki.expired, "pki.ca, but expired")]:
        with _tls_server(impostor, "check91-impostor") as fake:
            with make_channel(f"localhost:{fake.port}", pki) as channel:
                _, error = _call(channel, "WhoAmI")
        expect(error is not None,
               f"your channel accepted a server whose certificate was signed by {who}: "
               "trust pki.ca only")
    _expect_name_checked(lambda target: make_channel(target, pki), pki, server_only=True)
    return ("your server spoke TLS by name and by IP; your channel reached it and refused "
            "a certificate from another CA, an expired one, and ones for another host name")


@exercise(
    "9.2",
    "An mTLS server that rejects a client without a certificate",
    notebook=LESSON,
    hint="In mutual TLS each side proves who it is: the server must also be told which "
    "authority signs client certificates, and that a certificate is compulsory. The client "
    "sends its own key and certificate.",
    second_hint="Look at the parameters of grpc.ssl_server_credentials after the key pairs: one "
    "says whom to trust for client certificates, one makes a certificate compulsory. The "
    "client's credentials take its own key and certificate chain besides the roots.",
)
def mutual_tls(server_credentials: Callable, make_channel: Callable) -> str:
    pki = tls.make_pki(prefix="check92-")
    with serve(ADD, Vault(), name="check92-yours", credentials=server_credentials(pki)) as server:
        target = f"localhost:{server.port}"
        with _tls_client(target, pki, pki.alice) as channel:
            reply = _who(channel, "alice (certificate signed by pki.ca) calling your server",
                         "the server must trust pki.ca for client certificates "
                         "(root_certificates=)")
        expect(reply.name == "alice",
               "your server did not ask for alice's certificate (it saw no client identity): "
               "set require_client_auth=True")
        for client, what in [(None, "a client without a certificate"),
                             (pki.mallory, "mallory, whose certificate another CA signed,")]:
            with _tls_client(target, pki, client) as channel:
                _, error = _call(channel, "WhoAmI")
            expect(error is not None, f"{what} got an answer from your server: it must trust "
                   "only pki.ca and require a client certificate (require_client_auth=True)")
    reference_credentials = grpc.ssl_server_credentials(
        [(pki.server.key_pem, pki.server.cert_pem)], root_certificates=pki.ca.cert_pem,
        require_client_auth=True)
    with serve(ADD, Vault(), name="check92-mtls", credentials=reference_credentials) as server:
        for client in [pki.alice, pki.bob]:
            with make_channel(f"localhost:{server.port}", pki, client) as channel:
                reply = _who(channel, f"mtls_channel(target, pki, pki.{client.name}) calling "
                             "an mTLS server", "send the client's key and certificate "
                             "(private_key=, certificate_chain=) and trust pki.ca")
            expect_equal(reply.name, client.name,
                         "the client name the server read from your channel's certificate")
    _expect_name_checked(lambda target: make_channel(target, pki, pki.alice), pki,
                         server_only=False)
    return ("your server required a client certificate from pki.ca (refused none and another "
            "CA's); your channel presented alice's and bob's, and refused certificates for "
            "another host name")


class _Guarded(Vault):
    """The vault, with the learner's authorize(context, allowed) guarding both methods."""

    def __init__(self, authorize: Callable, allowed: set[str]) -> None:
        super().__init__()
        self.authorize, self.allowed_names = authorize, allowed

    def _enter(self, method: str, context: grpc.ServicerContext) -> str:
        name = self.authorize(context, set(self.allowed_names))
        return name if isinstance(name, str) else ""


def _expect_code(channel: grpc.Channel, expected: grpc.StatusCode, who: str,
                 metadata: Metadata | None = None, advice: str = "") -> None:
    for method in METHODS:
        _, error = _call(channel, method, metadata)
        if error is None:
            raise Mismatch(f"{who} was let in on {KIND[method]}, expected {expected.name}"
                           + (f": {advice}" if advice else ""))
        if error.code() != expected:
            raise Mismatch(f"{who} got {describe_rpc_error(error)} on {KIND[method]}, "
                           f"expected {expected.name}" + (f": {advice}" if advice else ""))
        expect(bool(error.details()), f"{who} got {expected.name} but no message (details)")
        expect(not error.details().startswith(CRASHED),
               f"{who} got {expected.name} on {KIND[method]}, but with gRPC's report of a crash "
               f"as its message ({error.details()}): your code raised after choosing the code. "
               "Abort with a message of your own saying what was wrong")


CRASHED = "Exception calling application: "  # how grpcio reports a handler that raised


def _expect_no_such_method(channel: grpc.Channel, who: str,
                           metadata: Metadata | None = None) -> None:
    """A method the server does not have: UNIMPLEMENTED (or UNAUTHENTICATED), not a crash."""
    missing = channel.unary_unary("/vault.Vault/NoSuchMethod")  # raw bytes both ways
    try:
        missing(b"", timeout=5, metadata=metadata)
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.UNIMPLEMENTED, UNAUTHENTICATED):
            return
        raise Mismatch(f"{who}, calling a method the server does not have, got "
                       f"{describe_rpc_error(error)}, expected UNIMPLEMENTED (or "
                       "UNAUTHENTICATED): when continuation finds no handler (None), there is "
                       "nothing to wrap or refuse; return None and gRPC answers UNIMPLEMENTED"
                       ) from None
    raise Mismatch(f"{who}, calling a method the server does not have, got an answer?")


@exercise(
    "9.3",
    "Authorize by client certificate identity",
    notebook=LESSON,
    hint="Two different failures: the server does not know who the caller is, or knows and "
    "says no. Only the TLS layer can tell you who it is (the certificate was verified); "
    "nothing the client writes in metadata can.",
    second_hint="What does context.peer_identities() return when the caller presented no "
    "certificate? The names come as bytes; compare the whole name, exactly, with the allowed "
    "set you were given. The two refusals have different status codes.",
)
def authorize_by_identity(authorize: Callable) -> str:
    pki = tls.make_pki(prefix="check93-")
    malice = pki.ca.issue("malice", file_name="check93-malice")
    mtls = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)],
                                       root_certificates=pki.ca.cert_pem, require_client_auth=True)
    vault = _Guarded(authorize, {"alice"})
    with serve(ADD, vault, name="check93-mtls", credentials=mtls) as server:
        target = f"localhost:{server.port}"
        with _tls_client(target, pki, pki.alice) as channel:
            for method in METHODS:
                reply, error = _call(channel, method)
                if error is not None:
                    raise Mismatch(f"alice, who is allowed, got {describe_rpc_error(error)} on "
                                   f"{KIND[method]}: read the name from the verified client "
                                   "certificate (context.peer_identities())")
                if method == "WhoAmI":
                    expect_equal(reply.name, "alice", "authorize(...) for alice returned a name")
        for client in [pki.bob, malice]:
            with _tls_client(target, pki, client) as channel:
                _expect_code(channel, PERMISSION_DENIED, f"{client.name} (known, not allowed)",
                             advice="compare the whole name with allowed, not a part of it"
                             if client is malice else "")
        with _tls_client(target, pki, pki.bob) as channel:
            for key in ["x-client-id", "x-user"]:
                _expect_code(channel, PERMISSION_DENIED, f"bob with metadata {key}: alice",
                             metadata=[(key, "alice")],
                             advice="metadata is whatever the client writes; trust only the "
                             "certificate")
    vault_for_bob = _Guarded(authorize, {"bob"})
    with serve(ADD, vault_for_bob, name="check93-bob", credentials=mtls) as server:
        with _tls_client(f"localhost:{server.port}", pki, pki.bob) as channel:
            reply = _who(channel, "bob calling a vault whose allowed set is {'bob'}",
                         "check against the allowed argument, not a fixed name")
            expect_equal(reply.name, "bob", "authorize(...) for bob returned a name")
        with _tls_client(f"localhost:{server.port}", pki, pki.alice) as channel:
            _expect_code(channel, PERMISSION_DENIED, "alice on a vault that allows only bob",
                         advice="check against the allowed argument, not a fixed name")
    server_only = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)])
    with serve(ADD, _Guarded(authorize, {"alice"}), name="check93-tls",
               credentials=server_only) as server:
        with _tls_client(f"localhost:{server.port}", pki, pki.alice) as channel:
            _expect_code(channel, UNAUTHENTICATED,
                         "a caller with no verified identity (TLS without client certificates)",
                         advice="peer_identities() is None: the server does not know who "
                         "it is, which is UNAUTHENTICATED")
    return ("alice got in on all three methods; bob, malice and a forged x-client-id got "
            "PERMISSION_DENIED; a caller without a certificate got UNAUTHENTICATED")


class _Recorder(grpc.ServerInterceptor):
    """Records the authorization header of every call, before any other interceptor."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def intercept_service(self, continuation, handler_call_details):
        header = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        with self._lock:
            self.seen.append((handler_call_details.method.rsplit("/", 1)[-1], header))
        return continuation(handler_call_details)


@exercise(
    "9.4",
    "A token plugin on a local channel",
    notebook=LESSON,
    hint="A grpc.AuthMetadataPlugin is called before every call and hands its metadata to "
    "callback. Tokens change over time, so ask for one each time. Call credentials travel "
    "only on a channel gRPC considers secure; on loopback that can be local credentials.",
    second_hint="The plugin's __call__(context, callback) hands metadata to callback as (key, "
    "value) pairs, keys in lowercase, and None for no error; ask get_token() there, not in "
    "__init__. Call credentials ride on channel credentials: look for the function that "
    "composes them, and for local channel credentials.",
)
def token_plugin(make_channel: Callable) -> str:
    tokens, recorder, vault = Tokens(), _Recorder(), Vault()
    current = {"token": tokens.issue("alice")}
    with serve(ADD, vault, name="check94-local", interceptors=[recorder, TokenAuth(tokens.key)],
               credentials=grpc.local_server_credentials()) as server:
        with make_channel(server.target, lambda: current["token"]) as channel:
            steps = [("WhoAmI", current["token"]), ("ListSecrets", current["token"])]
            steps.append(("WhoAmI", tokens.issue("alice", ttl=120)))  # the token was renewed
            for method, token in steps:
                current["token"] = token
                before = len(recorder.seen)
                _, error = _call(channel, method)
                arrived = [header for _, header in recorder.seen[before:]]
                if error is not None and not arrived:
                    advice = ("metadata keys must be lowercase" if "Illegal metadata"
                              in (error.details() or "") else "the call never reached the server")
                    raise Mismatch(f"{KIND[method]} on your channel failed with "
                                   f"{describe_rpc_error(error)}: {advice}")
                expect(bool(arrived) and arrived[-1] is not None,
                       f"{KIND[method]} reached the server without an authorization header: "
                       "call credentials need a secure channel (local credentials on loopback)")
                if arrived[-1] != f"Bearer {token}" and arrived[-1].endswith(token):
                    raise Mismatch(f"the server got authorization: {arrived[-1][:24]}...; "
                                   "expected 'Bearer <token>'")
                expect(arrived[-1] == f"Bearer {token}",
                       "after get_token() started returning a new token, your plugin still sent "
                       "the old one: ask get_token() on every call, not once")
                expect(error is None, f"{KIND[method]} failed with "
                       f"{describe_rpc_error(error) if error else ''}")
    return ("3 calls, unary and streaming, each carried the current token as "
            "'authorization: Bearer ...' over local credentials")


class _Details(NamedTuple):
    method: str
    invocation_metadata: tuple


def _not_solved_yet(interceptor: Any) -> None:
    """Call intercept_service once outside a server: an untouched exercise says so."""
    try:
        interceptor.intercept_service(
            lambda details: grpc.unary_unary_rpc_method_handler(lambda request, context: request),
            _Details("/vault.Vault/WhoAmI", ()))
    except NotImplementedError:
        raise
    except Exception:  # noqa: BLE001 - the real calls will report it
        pass


def _token_cases(tokens: Tokens) -> list[tuple[str, Metadata]]:
    now = int(time.time())

    def signed(claims: dict) -> Metadata:
        return [("authorization", "Bearer " + jwt.encode(claims, tokens.key, algorithm="HS256"))]

    return [
        ("no token", []),
        ("a token signed with another key", [("authorization",
                                              f"Bearer {Tokens().issue('alice')}")]),
        ("an expired token", [("authorization", f"Bearer {tokens.issue('alice', ttl=-30)}")]),
        ("a token that is not a JWT", [("authorization", "Bearer let-me-in")]),
        ("a key without 'Bearer '", [("authorization", tokens.issue("alice"))]),
        ("a token with no exp claim (it would never expire)",
         signed({"sub": "alice", "iss": tokens.issuer, "iat": now})),
        ("a token with no sub claim (for nobody)",
         signed({"iss": tokens.issuer, "iat": now, "exp": now + 60})),
        ("a token from another issuer",
         signed({"sub": "alice", "iss": "someone-else", "iat": now, "exp": now + 60})),
        ("a token with no iss claim", signed({"sub": "alice", "iat": now, "exp": now + 60})),
    ]


@exercise(
    "9.5",
    "A token check that covers every call type",
    notebook=LESSON,
    hint="intercept_service runs before the handler for every call type, and what you return "
    "instead of the handler is driven like the method it replaces. Let PyJWT verify the token; "
    "ask yourself which of its claims it checks only when they are there.",
    second_hint="jwt.decode checks the signature, and the expiry only if the token has one: "
    "look at its `options={'require': [...]}` and `issuer=` parameters. The refusing handler "
    "must not wait for a request message (a client stream may send none).",
)
def token_interceptor(interceptor_class: type) -> str:
    tokens, vault = Tokens(), Vault()
    interceptor = interceptor_class(tokens.key)
    _not_solved_yet(interceptor)
    cases = _token_cases(tokens)
    with serve(ADD, vault, name="check95-local", interceptors=[interceptor],
               credentials=grpc.local_server_credentials()) as server:
        with grpc.secure_channel(server.target, grpc.local_channel_credentials()) as channel:
            good = [("authorization", f"Bearer {tokens.issue('alice')}")]
            for method in METHODS:
                _, error = _call(channel, method, good)
                if error is not None:
                    raise Mismatch(f"{KIND[method]} with a valid token failed with "
                                   f"{describe_rpc_error(error)}")
            reached = {"WhoAmI": 1, "ListSecrets": 1, "PutSecrets": 1}
            expect_equal(dict(vault.calls), reached,
                         "calls with a valid token that reached the handlers")
            for what, metadata in cases:
                _expect_code(channel, UNAUTHENTICATED, f"a call with {what}", metadata,
                             advice="the caller did not prove who it is, so UNAUTHENTICATED "
                             "(PERMISSION_DENIED is for a known caller who is not allowed)")
                expect_equal(dict(vault.calls), reached,
                             f"calls that reached the handlers after calls with {what}")
            _expect_no_such_method(channel, "a call with no token")
            _expect_no_such_method(channel, "a call with a valid token", good)
    _expect_bidi_refused(interceptor_class(tokens.key), tokens)
    return (f"valid tokens got through on all three methods; {len(cases)} kinds of bad token "
            "(forged, expired, no exp, no sub, another issuer...) got UNAUTHENTICATED on unary, "
            "server-streaming and empty client-streaming calls before any handler ran, and on "
            "the route guide's bidirectional RouteChat; an unknown method stayed UNIMPLEMENTED")


def _expect_bidi_refused(interceptor: Any, tokens: Tokens) -> None:
    """The interceptor in front of lesson 06's route guide: its RouteChat is a bidi stream."""
    guide = RouteGuide(make_features())
    notes = [routeguide_pb2.RouteNote(location=routeguide_pb2.Point(latitude=1), message="hi")]
    with serve(routeguide_pb2_grpc.add_RouteGuideServicer_to_server, guide, name="check95-guide",
               interceptors=[interceptor], credentials=grpc.local_server_credentials()) as server:
        with grpc.secure_channel(server.target, grpc.local_channel_credentials()) as channel:
            stub = routeguide_pb2_grpc.RouteGuideStub(channel)
            good = [("authorization", f"Bearer {tokens.issue('alice')}")]
            try:
                list(stub.RouteChat(iter(notes), timeout=5, metadata=good))
            except grpc.RpcError as error:
                raise Mismatch("RouteChat (bidirectional streaming) on the route guide, with a "
                               f"valid token, failed with {describe_rpc_error(error)}") from None
            for what, metadata in [("no token", []),
                                   ("an expired token", [("authorization", "Bearer "
                                                          + tokens.issue("alice", ttl=-30))])]:
                try:
                    list(stub.RouteChat(iter([]), timeout=5, metadata=metadata))
                except grpc.RpcError as error:
                    expect(error.code() == UNAUTHENTICATED and not error.details().startswith(
                        CRASHED), f"RouteChat (bidirectional streaming) on the route guide, "
                        f"with {what}, got {describe_rpc_error(error)}, expected "
                        "UNAUTHENTICATED: the refusal must suit all four call types")
                else:
                    raise Mismatch(f"RouteChat (bidirectional streaming) on the route guide, "
                                   f"with {what}, was let in, expected UNAUTHENTICATED")


# --- 9.6 challenge: a token bound to the client certificate --------------------------

@exercise(
    "9.6",
    "Challenge: a token that only its owner can use",
    notebook=LESSON,
    hint="Two proofs of identity arrive with each call: one the TLS layer verified, one in the "
    "metadata. Where can your code see both at once? An interceptor sees the metadata; only the "
    "handler's context sees the certificate.",
    second_hint="Wrap the handler as lesson 08 does, with the factory of its kind, and compare "
    "before the method's own code runs (and before it reads a request). Compare the whole "
    "name, exactly. Everything exercise 9.5 required of the token still holds.",
)
def bound_token(interceptor_class: type) -> str:
    tokens = Tokens()
    _not_solved_yet(interceptor_class(tokens.key))
    pki = tls.make_pki(prefix="check96-")
    now = int(time.time())

    def bearer(subject: str | None = None, token: str | None = None) -> Metadata:
        return [("authorization", f"Bearer {token or tokens.issue(subject)}")]

    vault = Vault(allowed={"alice"})
    mtls = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)],
                                       root_certificates=pki.ca.cert_pem, require_client_auth=True)
    no_exp = jwt.encode({"sub": "alice", "iss": tokens.issuer, "iat": now}, tokens.key,
                        algorithm="HS256")
    refused = [
        (pki.alice, bearer("bob"), "alice's certificate with bob's valid token"),
        (pki.bob, bearer("alice"), "bob's certificate with alice's valid token (stolen)"),
        (pki.alice, bearer("ali"), "alice's certificate with a valid token for 'ali'"),
        (pki.alice, bearer("Alice"), "alice's certificate with a valid token for 'Alice'"),
        (pki.alice, [], "alice's certificate and no token"),
        (pki.alice, bearer(token=tokens.issue("alice", ttl=-30)),
         "alice's certificate with her expired token"),
        (pki.alice, bearer(token=Tokens().issue("alice")),
         "alice's certificate with a token signed with another key"),
        (pki.alice, bearer(token=no_exp), "alice's certificate with her token without exp"),
    ]
    with serve(ADD, vault, name="check96-mtls", credentials=mtls,
               interceptors=[interceptor_class(tokens.key)]) as server:
        target = f"localhost:{server.port}"
        with _tls_client(target, pki, pki.alice) as channel:
            for method in METHODS:
                reply, error = _call(channel, method, bearer("alice"))
                if error is not None:
                    raise Mismatch(f"alice, with her certificate and her own valid token, got "
                                   f"{describe_rpc_error(error)} on {KIND[method]}")
                if method == "WhoAmI":
                    expect_equal(reply.name, "alice", "the name the vault saw for alice")
        expect_equal(sum(vault.calls.values()), 3, "alice's calls that reached the handlers")
        for client, metadata, what in refused:
            with _tls_client(target, pki, client) as channel:
                _expect_code(channel, UNAUTHENTICATED, what, metadata,
                             advice="a valid token proves who the caller is only if its "
                             "subject is exactly the certificate's name; otherwise the server "
                             "does not know who it is: UNAUTHENTICATED")
            expect_equal(sum(vault.calls.values()), 3,
                         f"calls that reached the handlers after {what}")
        with _tls_client(target, pki, pki.bob) as channel:
            _expect_code(channel, PERMISSION_DENIED, "bob, with his certificate and his own "
                         "token, on a vault that allows only alice", bearer("bob"),
                         advice="a caller whose token matches the certificate must reach the "
                         "vault, which answers PERMISSION_DENIED itself")
        with _tls_client(target, pki, pki.alice) as channel:
            _expect_no_such_method(channel, "alice with her certificate and no token")
    server_only = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)])
    with serve(ADD, Vault(), name="check96-tls", credentials=server_only,
               interceptors=[interceptor_class(tokens.key)]) as server:
        with _tls_client(f"localhost:{server.port}", pki) as channel:
            _expect_code(channel, UNAUTHENTICATED, "alice's valid token with no client "
                         "certificate (a server that asks for none)", bearer("alice"),
                         advice="without a certificate there is nothing to bind the token to")
    local = Vault()
    with serve(ADD, local, name="check96-local", credentials=grpc.local_server_credentials(),
               interceptors=[interceptor_class(tokens.key)]) as server:
        with grpc.secure_channel(server.target, grpc.local_channel_credentials()) as channel:
            _expect_code(channel, UNAUTHENTICATED, "a valid token for 'local' over local "
                         "credentials (no certificate; the peer identity is the transport's "
                         "name, b'local')", bearer("local"),
                         advice="peer_identities() names a caller only over TLS with a client "
                         "certificate: under local credentials it is [b'local']")
        expect_equal(sum(local.calls.values()), 0,
                     "calls that reached the handlers over local credentials")
    return (f"alice got in with her own token on all three methods; {len(refused) + 2} "
            "mismatched or bad combinations (a stolen token, a borrowed one, 'ali', no "
            "certificate, local credentials...) got UNAUTHENTICATED before any handler ran; "
            "bob with his own token reached the vault's PERMISSION_DENIED; an unknown method "
            "stayed UNIMPLEMENTED")
