"""helpers.wiretap: calls through the tap behave as without it, bad bytes, cleanup, display."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from typing import Iterator
from xml.etree import ElementTree

import grpc
import pytest
from hyperframe import frame as h2
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import serve, tls
from helpers.reference.routeguide import AREA, RouteGuide, make_features
from helpers.reference.routeguide import routeguide_pb2 as pb
from helpers.reference.routeguide import routeguide_pb2_grpc as pb_grpc
from helpers.wiretap import (CLIENT, PREFACE, SERVER, Decoder, MethodTypes, WiretapView,
                             binary_value, calls_of, timeline_svg, wiretap)

FEATURE = make_features()[0]
BAD_POINT = pb.Point(latitude=10**9)  # latitude beyond 90 degrees: INVALID_ARGUMENT


@pytest.fixture(scope="module")
def server():
    with serve(pb_grpc.add_RouteGuideServicer_to_server, RouteGuide(), name="test-wiretap",
               max_workers=60) as running:
        yield running


def four_patterns(target: str) -> list:
    """The four call patterns of the route guide, and an error: what each returned."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        route = [feature.location for feature in make_features()[:10]]
        notes = [pb.RouteNote(location=route[i % 3], message=f"note {i}") for i in range(6)]
        summary = stub.RecordRoute(iter(route), timeout=5)
        summary.elapsed_time = 0  # seconds: may differ by one between runs
        try:
            stub.GetFeature(BAD_POINT, timeout=5)
            error = None
        except grpc.RpcError as failed:
            error = (failed.code(), failed.details())
        return [stub.GetFeature(FEATURE.location, timeout=5),
                list(stub.ListFeatures(AREA, timeout=5)),
                summary,
                list(stub.RouteChat(iter(notes), timeout=5)),
                error]


# ---- transparency ----------------------------------------------------------------------------

def test_the_four_patterns_give_the_same_results_through_the_tap(server) -> None:
    direct = four_patterns(server.target)
    with wiretap(server.target) as tap:
        tapped = four_patterns(tap.target)
        calls = tap.calls()
    assert tapped == direct
    paths = [call.path.rsplit("/", 1)[1] for call in calls]
    assert paths == ["RecordRoute", "GetFeature", "GetFeature", "ListFeatures", "RouteChat"]
    record, error, get, listing, chat = calls
    assert [c.stream for c in calls] == [1, 3, 5, 7, 9]  # client streams: odd ids, in order
    assert len(record.requests) == 10 and len(record.replies) == 1 and record.half_closed
    assert record.requests[0].decoded == make_features()[0].location
    assert get.replies[0].decoded == FEATURE and get.status == grpc.StatusCode.OK
    assert len(listing.replies) == len(direct[1]) and listing.replies[0].decoded == direct[1][0]
    assert len(chat.requests) == 6 and [m.decoded for m in chat.replies] == direct[3]
    assert error.trailers_only and not error.replies and error.response_headers == {}
    assert error.status == grpc.StatusCode.INVALID_ARGUMENT and error.message == direct[4][1]
    for call in calls:
        assert call.request_headers["content-type"] == "application/grpc"
        assert call.request_headers["te"] == "trailers"
        assert call.reset is None and call.trailers["grpc-status"]


def test_a_deadline_travels_as_grpc_timeout_and_metadata_as_headers(server) -> None:
    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        stub.GetFeature(FEATURE.location, timeout=2.5, metadata=[("request-id", "abc-42"),
                                                                  ("trace-bin", b"\x00\x01")])
        stub.GetFeature(FEATURE.location)
        with_deadline, without = tap.calls()
    value = with_deadline.request_headers["grpc-timeout"]
    units = {"H": 3600, "M": 60, "S": 1, "m": 1e-3, "u": 1e-6, "n": 1e-9}
    assert 2.0 < int(value[:-1]) * units[value[-1]] <= 2.6
    assert with_deadline.request_headers["request-id"] == "abc-42"
    # grpcio sends -bin values as raw bytes after a 0 byte (both sides announced it in SETTINGS)
    assert with_deadline.request_headers["trace-bin"] == "(binary) 00 01"
    assert binary_value(with_deadline.request_headers["trace-bin"]) == b"\x00\x01"
    assert binary_value("AAE") == b"\x00\x01"  # the base64 form, without padding
    assert "grpc-timeout" not in without.request_headers


class RichErrors(RouteGuide):
    """GetFeature refuses every point with a rich error: a BadRequest in the status details."""

    def GetFeature(self, request, context):
        from google.protobuf import any_pb2
        from google.rpc import code_pb2, error_details_pb2, status_pb2
        from grpc_status import rpc_status

        violation = error_details_pb2.BadRequest.FieldViolation(field="latitude",
                                                                 description="too far north")
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        context.abort_with_status(rpc_status.to_status(status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="bad point", details=[detail])))


def test_a_rich_error_travels_in_grpc_status_details_bin() -> None:
    from google.rpc import error_details_pb2

    with serve(pb_grpc.add_RouteGuideServicer_to_server, RichErrors(),
               name="test-wiretap-rich") as rich:
        with wiretap(rich.target) as tap, grpc.insecure_channel(tap.target) as channel:
            with pytest.raises(grpc.RpcError) as failed:
                pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
            [call] = tap.calls()
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert call.status == grpc.StatusCode.INVALID_ARGUMENT and call.message == "bad point"
    details = call.status_details
    assert details.message == "bad point" and len(details.details) == 1
    bad_request = error_details_pb2.BadRequest()
    assert details.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "latitude"


def test_a_header_block_continued_in_continuation_frames_is_decoded() -> None:
    import hpack

    block = hpack.Encoder().encode([(":method", "POST"),
                                    (":path", "/routeguide.RouteGuide/GetFeature"),
                                    ("big-metadata", "x" * 300)])
    headers = h2.HeadersFrame(1, data=block[:10])
    rest = h2.ContinuationFrame(1, data=block[10:], flags=["END_HEADERS"])
    decoder = Decoder()
    frames = decoder.feed(CLIENT, PREFACE + h2_frames(headers, rest))
    assert [f.type for f in frames] == ["HEADERS", "CONTINUATION"] and not frames[0].headers
    [call] = calls_of(frames)
    assert call.path == "/routeguide.RouteGuide/GetFeature"
    assert call.request_headers["big-metadata"] == "x" * 300


def test_a_cancelled_stream_shows_rst_stream_cancel_from_the_client(server) -> None:
    release = threading.Event()

    def notes() -> Iterator:
        yield pb.RouteNote(location=FEATURE.location, message="first")
        release.wait(5)

    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        call = pb_grpc.RouteGuideStub(channel).RouteChat(notes(), timeout=10)
        deadline = time.monotonic() + 5
        while not tap.calls() or not tap.calls()[0].requests:
            assert time.monotonic() < deadline, "the first note never reached the tap"
        call.cancel()
        release.set()
        with pytest.raises(grpc.RpcError) as failed:
            next(call)
        assert failed.value.code() == grpc.StatusCode.CANCELLED
        assert tap.wait_for(lambda: tap.calls()[0].reset, timeout=5)
        chat = tap.calls()[0]
    assert chat.reset == "CANCEL" and chat.reset_by == CLIENT
    assert chat.status is None  # a cancelled call gets no trailers


def test_a_message_over_one_mebibyte_spans_data_frames_and_decodes(server) -> None:
    big = pb.Feature(name="x" * (3 << 19), location=FEATURE.location)  # 1.5 MiB name
    with serve(pb_grpc.add_RouteGuideServicer_to_server, RouteGuide([big]),
               name="test-wiretap-big") as big_server:
        with wiretap(big_server.target) as tap, grpc.insecure_channel(tap.target) as channel:
            reply = pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=10)
            call = tap.calls()[0]
    assert reply == big
    [message] = call.replies
    assert message.length == big.ByteSize() > 1 << 20 and message.decoded == big
    data_frames = [f for f in call.frames if f.type == "DATA" and f.direction == SERVER]
    assert sum(f.length for f in data_frames) == message.length + 5


def test_fifty_concurrent_calls_share_one_connection_as_streams(server) -> None:
    points = [feature.location for feature in make_features()[:50]]
    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        futures = [stub.GetFeature.future(point, timeout=10) for point in points]
        replies = [future.result() for future in futures]
        calls = tap.calls()
        assert tap.connections == 1
    assert [reply.location for reply in replies] == points
    assert sorted(call.stream for call in calls) == list(range(1, 100, 2))
    assert {call.connection for call in calls} == {1}
    assert all(call.status == grpc.StatusCode.OK and len(call.replies) == 1 for call in calls)
    assert {call.replies[0].decoded.location.latitude for call in calls} == {
        p.latitude for p in points}


def test_compressed_messages_show_the_flag_and_still_decode(server) -> None:
    note = pb.RouteNote(location=FEATURE.location, message="compress me " * 100)
    with wiretap(server.target) as tap, grpc.insecure_channel(
            tap.target, compression=grpc.Compression.Gzip) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        assert list(stub.RouteChat(iter([note, note]), timeout=5)) == [note]
        stub.GetFeature(FEATURE.location, timeout=5)
        chat, get = tap.calls()
    assert chat.request_headers["grpc-encoding"] == "gzip"
    assert all(m.compressed and m.length < note.ByteSize() for m in chat.requests)
    assert [m.decoded for m in chat.requests] == [note, note]
    # grpcio sends a message uncompressed when compressing would not make it smaller
    assert not get.requests[0].compressed and get.requests[0].decoded == FEATURE.location


def test_a_grpc_aio_channel_works_through_the_tap(server) -> None:
    async def one_of_each(target: str) -> tuple:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.RouteGuideStub(channel)
            feature = await stub.GetFeature(FEATURE.location, timeout=5)
            features = [f async for f in stub.ListFeatures(AREA, timeout=5)]
            return feature, len(features)

    with wiretap(server.target) as tap:
        assert asyncio.run(one_of_each(tap.target)) == (FEATURE, 100)
        calls = tap.calls()
    assert [len(call.replies) for call in calls] == [1, 100]


def test_through_tls_the_tap_sees_only_encrypted_bytes() -> None:
    pki = tls.make_pki("wiretap-")
    credentials = grpc.ssl_server_credentials([(pki.server.key_pem, pki.server.cert_pem)])
    with serve(pb_grpc.add_RouteGuideServicer_to_server, RouteGuide(), name="test-wiretap-tls",
               credentials=credentials) as secure:
        with wiretap(secure.target) as tap, grpc.secure_channel(
                tap.target, grpc.ssl_channel_credentials(pki.ca.cert_pem)) as channel:
            stub = pb_grpc.RouteGuideStub(channel)
            assert stub.GetFeature(FEATURE.location, timeout=5) == FEATURE
            tap.wait_idle()
            frames, text = tap.frames, WiretapView(tap.frames).text()
    assert frames and {f.type for f in frames} == {"TLS"}
    assert {f.direction for f in frames} == {CLIENT, SERVER}
    assert sum(f.length for f in frames) == tap.up + tap.down
    assert text.startswith("TLS: ") and "encrypted" in text and tap.calls() == []


# ---- bad input ---------------------------------------------------------------------------

def h2_frames(*frames: h2.Frame) -> bytes:
    return b"".join(frame.serialize() for frame in frames)


def test_a_message_split_over_data_frames_is_put_back_together() -> None:
    body = FEATURE.location.SerializeToString()
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    decoder = Decoder()
    decoder.feed(CLIENT, PREFACE)
    first, second = h2.DataFrame(1, data=message[:3]), h2.DataFrame(1, data=message[3:])
    frames = decoder.feed(CLIENT, h2_frames(first, second))
    assert [len(f.messages) for f in frames] == [0, 1]
    assert frames[1].messages[0].length == len(body) and frames[1].messages[0].decoded is None


def test_an_undecodable_header_block_is_an_error_entry_and_later_frames_still_decode() -> None:
    decoder = Decoder()
    bad = h2.HeadersFrame(1, data=b"\xff\xff\xff\xff", flags=["END_HEADERS"])
    frames = decoder.feed(CLIENT, PREFACE + h2_frames(bad, h2.RstStreamFrame(1, error_code=8),
                                                        h2.PingFrame(0, opaque_data=b"12345678")))
    assert [f.type for f in frames] == ["HEADERS", "RST_STREAM", "PING"]
    assert "cannot decode the header block" in frames[0].error
    assert frames[1].detail == "CANCEL" and frames[2].detail == "data 3132333435363738"
    assert "error: cannot decode" in str(frames[0])


def test_bytes_that_are_not_http2_give_one_clear_error() -> None:
    decoder = Decoder()
    [entry] = decoder.feed(CLIENT, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert entry.type == "ERROR" and "not HTTP/2" in entry.error
    assert decoder.feed(CLIENT, b"more") == [] and decoder.feed(SERVER, b"HTTP/1.1 400") == []


@settings(max_examples=300, deadline=None)
@given(client=st.lists(st.binary(max_size=64), max_size=8),
       server=st.lists(st.binary(max_size=64), max_size=8),
       with_preface=st.booleans())
def test_random_bytes_never_crash_the_decoder(client, server, with_preface) -> None:
    decoder = Decoder()
    frames = decoder.feed(CLIENT, PREFACE) if with_preface else []
    for chunk_c, chunk_s in zip(client + [b""] * len(server), server + [b""] * len(client)):
        frames += decoder.feed(CLIENT, chunk_c) + decoder.feed(SERVER, chunk_s)
    for frame in frames:
        assert frame.type and isinstance(str(frame), str)
        assert frame.type != "ERROR" or frame.error
    assert isinstance(WiretapView(frames, frames=True).text(), str)
    assert "<svg" in WiretapView(frames)._repr_html_()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 255), st.integers(0, 9),
                          st.binary(max_size=40)), max_size=6))
def test_random_frames_with_valid_headers_never_crash_the_decoder(frames) -> None:
    """Well-formed frame headers of every type with random bodies: the body parsers' errors."""
    decoder = Decoder()
    raw = b"".join(len(body).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
                   + body for kind, flags, stream, body in frames)
    entries = decoder.feed(CLIENT, PREFACE + raw)
    assert len(entries) <= len(frames)


@settings(max_examples=15, deadline=None)
@given(noise=st.binary(min_size=1, max_size=4096), after_preface=st.booleans())
def test_random_bytes_through_the_relay_leave_it_working(server, noise, after_preface) -> None:
    with wiretap(server.target) as tap:
        with socket.create_connection(("127.0.0.1", tap.port), timeout=5) as raw:
            raw.sendall(PREFACE + noise if after_preface else noise)
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(65536):  # the server answers what it can, then closes
                pass
        with grpc.insecure_channel(tap.target) as channel:
            reply = pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        tap.wait_idle()
        calls, frames = tap.calls(), tap.frames
    assert reply == FEATURE
    first = [f for f in frames if f.connection == 1]
    if not after_preface and not PREFACE.startswith(noise):
        assert first[0].type in ("ERROR", "TLS")  # a 0x16 first byte looks like TLS
        assert first[0].type == "TLS" or "not HTTP/2" in first[0].error
    assert all(f.type != "ERROR" or f.error for f in first)
    assert calls[-1].connection == 2 and calls[-1].status == grpc.StatusCode.OK


def echo_server() -> tuple[socket.socket, threading.Thread]:
    """A TCP server on 127.0.0.1 that sends back what it reads, for one connection."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        with listener, listener.accept()[0] as conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    return listener, thread


def test_every_byte_passes_unchanged_even_when_the_reader_is_slow() -> None:
    """8 MiB both ways while the client reads only after sending: the relay must hold back."""
    data = random.Random(19).randbytes(8 << 20)
    listener, echo = echo_server()
    with wiretap(f"127.0.0.1:{listener.getsockname()[1]}") as tap:
        with socket.create_connection(("127.0.0.1", tap.port), timeout=10) as client:
            sender = threading.Thread(target=lambda: (client.sendall(data),
                                                      client.shutdown(socket.SHUT_WR)))
            sender.start()
            time.sleep(0.3)  # let the buffers on the way back fill up before reading
            received = bytearray()
            while chunk := client.recv(1 << 16):
                received += chunk
            sender.join(10)
        echo.join(10)
        frames = tap.frames
    assert bytes(received) == data and tap.up == tap.down == len(data)
    assert [f.type for f in frames] in (["ERROR"], ["TLS", "TLS"], ["TLS"])  # not HTTP/2


def cpu_seconds(thread: threading.Thread) -> float:
    """CPU time a thread of this process has used so far (Linux)."""
    fields = open(f"/proc/self/task/{thread.native_id}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_half_closed_connection_does_not_make_the_relay_spin() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def read_then_hold() -> None:  # reads to the client's EOF, keeps its side open a while
        with listener, listener.accept()[0] as conn:
            while conn.recv(1 << 16):
                pass
            conn.sendall(b"still here")
            done.wait(5)

    holder = threading.Thread(target=read_then_hold, daemon=True)
    holder.start()
    with wiretap(f"127.0.0.1:{listener.getsockname()[1]}") as tap:
        with socket.create_connection(("127.0.0.1", tap.port), timeout=5) as client:
            client.sendall(b"hello")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"still here"  # the other direction still flows
            before = cpu_seconds(tap._thread)
            time.sleep(0.5)
            used = cpu_seconds(tap._thread) - before
            done.set()
            assert client.recv(100) == b""  # and its end is passed on too
    holder.join(5)
    assert used < 0.1, f"the relay used {used} s of CPU in 0.5 s while idle"


def test_several_connections_at_once_are_told_apart(server) -> None:
    def two_calls(channel: grpc.Channel) -> list:
        stub = pb_grpc.RouteGuideStub(channel)
        return [stub.GetFeature(FEATURE.location, timeout=5), len(list(
            stub.ListFeatures(AREA, timeout=5)))]

    with wiretap(server.target) as tap:
        channels = [grpc.insecure_channel(tap.target, options=[("grpc.use_local_subchannel_pool",
                                                                 1)]) for _ in range(6)]
        threads = [threading.Thread(target=two_calls, args=(channel,)) for channel in channels]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        for channel in channels:
            channel.close()
        calls = tap.calls()
        view = WiretapView(tap.frames).text()
    assert tap.connections == 6
    assert sorted((call.connection, call.stream) for call in calls) == [
        (connection, stream) for connection in range(1, 7) for stream in (1, 3)]
    assert all(call.status == grpc.StatusCode.OK for call in calls)
    assert view.count("connection ") == 12  # one line per call, naming its connection


def test_method_types_come_from_modules_or_the_default_pool() -> None:
    assert MethodTypes([pb])("/routeguide.RouteGuide/GetFeature") == (
        type(FEATURE.location), type(FEATURE))
    assert MethodTypes()("/routeguide.RouteGuide/RecordRoute")[1] is pb.RouteSummary
    assert MethodTypes()("/no.Such/Method") is None and MethodTypes()("/routeguide") is None


def test_decode_false_only_counts(server) -> None:
    with wiretap(server.target, decode=False) as tap:
        with grpc.insecure_channel(tap.target) as channel:
            pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        assert tap.wait_idle()
    assert tap.frames == [] and tap.connections == 1 and tap.up > 0 and tap.down > 0


def test_an_unreachable_server_is_noted_and_the_client_sees_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        gone = f"127.0.0.1:{probe.getsockname()[1]}"
    with wiretap(gone) as tap, grpc.insecure_channel(tap.target) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=2)
        tap.wait_idle()
        frames = tap.frames
    assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert frames and "cannot reach" in frames[0].error


# ---- cleanup -----------------------------------------------------------------------------

def open_fds() -> set[tuple[str, str]]:
    """This process's open files: (fd, what it is), e.g. ('7', 'socket:[18101]')."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except FileNotFoundError:  # the fd listdir itself used
            pass
    return found


def test_no_thread_or_socket_is_left_after_with(server) -> None:
    four_patterns(server.target)  # gRPC's own threads and pollers exist before we count
    threads, fds = threading.active_count(), open_fds()
    with wiretap(server.target) as tap:
        sockets = [socket.create_connection(("127.0.0.1", tap.port))
                   for _ in range(5)]
        with grpc.insecure_channel(tap.target) as channel:
            pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        assert threading.active_count() == threads + 1  # the relay: one thread for every link
    assert not tap._thread.is_alive()
    for sock in sockets:
        sock.close()
    assert threading.active_count() == threads
    deadline = time.monotonic() + 5  # the in-process server closes its side when it notices
    while open_fds() - fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() - fds == set()  # (gRPC may close some of its own meanwhile)


# ---- display -----------------------------------------------------------------------------

def test_show_has_stable_text_and_an_html_timeline(server) -> None:
    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        stub.GetFeature(FEATURE.location, timeout=5)
        with pytest.raises(grpc.RpcError):
            stub.GetFeature(BAD_POINT, timeout=5)
        tap.wait_idle()
        frames = tap.frames
    calls = WiretapView(frames).text().splitlines()
    assert calls == [
        "stream 1  /routeguide.RouteGuide/GetFeature  → 1 message (17 B)  "
        "← 1 message (30 B)  OK",
        "stream 3  /routeguide.RouteGuide/GetFeature  → 1 message (6 B)  ← 0 messages (0 B)  "
        "INVALID_ARGUMENT 'point (1000000000, 0) is not a valid position: latitude must be "
        "within +-900000000 and longitude within +-1800000000 (E7 degrees)' (trailers only)",
    ]
    one = WiretapView(frames, stream=1, frames=True)
    text = one.text()
    assert "ms" not in text and "stream 3" not in text and "stream 0" not in text
    assert "    :path: /routeguide.RouteGuide/GetFeature" in text
    assert f"message 17 B uncompressed: Point {{latitude: {FEATURE.location.latitude}" in text
    assert "    grpc-status: 0" in text
    page = one._repr_html_()
    assert page.count("<g>") == len(one.frames) and "client</text>" in page and " ms</text>" in page
    assert "    :path: /routeguide.RouteGuide/GetFeature" in page  # the text, under the timeline
    assert "stream 3" not in page
    assert repr(one) == text
    assert calls_of(frames)[1].trailers_only


def test_show_prints_outside_ipython(server, capsys) -> None:
    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        tap.show()
        tap.reset()
        tap.show()
    assert capsys.readouterr().out == (
        "stream 1  /routeguide.RouteGuide/GetFeature  → 1 message (17 B)  "
        "← 1 message (30 B)  OK\nno frames captured\n")


def test_the_display_carries_text_and_html(server) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        view = WiretapView(tap.frames, stream=1)
    data, _ = InteractiveShell.instance().display_formatter.format(view)
    assert data["text/plain"] == view.text() and data["text/html"].startswith("<div")
    assert "<svg" in data["text/html"] and " ms</text>" in data["text/html"]
    svg = data["text/html"].split("<pre>")[0].removeprefix("<div class='wiretap'>")
    drawing = ElementTree.fromstring(svg)  # well-formed SVG: one <g> with a <title> per frame
    assert len(drawing.findall("{http://www.w3.org/2000/svg}g")) == len(view.frames)


def test_a_graceful_stop_shows_goaway() -> None:
    running = serve(pb_grpc.add_RouteGuideServicer_to_server, RouteGuide(),
                    name="test-wiretap-goaway")
    with wiretap(running.target) as tap, grpc.insecure_channel(tap.target) as channel:
        pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        running.stop(grace=1)
        assert tap.wait_for(lambda: any(f.type == "GOAWAY" for f in tap.frames), timeout=5)
        goaway = next(f for f in tap.frames if f.type == "GOAWAY")
    assert goaway.direction == SERVER and goaway.stream == 0
    assert goaway.detail.startswith("NO_ERROR last stream ")


def test_a_long_label_is_cut_between_the_lanes_and_whole_in_its_tooltip(server) -> None:
    with wiretap(server.target) as tap, grpc.insecure_channel(tap.target) as channel:
        with pytest.raises(grpc.RpcError):  # a long grpc-message in one HEADERS frame
            pb_grpc.RouteGuideStub(channel).GetFeature(BAD_POINT, timeout=5)
        tap.wait_idle()
        frames = tap.frames
    drawing = ElementTree.fromstring(timeline_svg(frames))
    svg = "{http://www.w3.org/2000/svg}"
    labels = [group.findall(f"{svg}text")[1].text for group in drawing.iter(f"{svg}g")]
    longest = max(labels, key=len)
    assert len(longest) <= 88 and longest.endswith("…"), longest
    tips = [group.find(f"{svg}title").text for group in drawing.iter(f"{svg}g")]
    assert any("grpc-message: point (1000000000, 0) is not a valid position" in tip
               for tip in tips)


# ---- relay(): connections handed over by another relay ---------------------------------------

def test_relay_takes_over_a_connection_a_proxy_opened(server) -> None:
    """A CONNECT proxy made of the tap: it answers the request line, then hands both sockets
    to relay(); the call works and the tap counts and decodes the tunnelled bytes."""
    from helpers.reference.production import ConnectProxy

    proxy = ConnectProxy(decode=True)
    os.environ["http_proxy"] = proxy.url
    try:
        with grpc.insecure_channel(server.target) as channel:
            feature = pb_grpc.RouteGuideStub(channel).GetFeature(FEATURE.location, timeout=5)
        proxy.wait_idle()
    finally:
        os.environ.pop("http_proxy")
        proxy.close()
    assert feature == FEATURE
    assert proxy.seen == [f"CONNECT {server.target} HTTP/1.1"] and proxy.connections == 1
    assert [call.path for call in proxy.calls()] == ["/routeguide.RouteGuide/GetFeature"]
    assert proxy.up > 0 and proxy.down > 0


def test_a_connect_proxy_refuses_anything_but_connect() -> None:
    from helpers.reference.production import ConnectProxy

    with ConnectProxy() as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        client.settimeout(5)
        assert client.recv(100).startswith(b"HTTP/1.1 502")
    assert proxy.seen == ["GET / HTTP/1.1"] and proxy.up == 0
