"""helpers.protos: compile once, import, report protoc's errors plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import protos


def test_load_returns_messages_and_stubs() -> None:
    pb2, pb2_grpc = protos.load("calculator")
    assert pb2.AddRequest(a=1, b=2).b == 2
    assert hasattr(pb2_grpc, "CalculatorStub")
    assert hasattr(pb2_grpc, "add_CalculatorServicer_to_server")


def test_generated_folder_has_python_grpc_and_type_hint_files() -> None:
    names = {path.name for path in protos.generated_dir().iterdir()}
    assert {"calculator_pb2.py", "calculator_pb2_grpc.py", "calculator_pb2.pyi"} <= names


def test_unchanged_protos_are_not_recompiled(monkeypatch) -> None:
    protos.load("calculator")  # make sure the cache exists

    def fail(*args, **kwargs):
        raise AssertionError("protoc ran again for unchanged .proto files")

    monkeypatch.setattr(protos, "compile_protos", fail)
    pb2, _ = protos.load("calculator")
    assert pb2.DESCRIPTOR.package == "calculator"


def test_the_fingerprint_follows_the_content(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(protos, "PROTO_DIR", tmp_path)
    (tmp_path / "a.proto").write_text('syntax = "proto3";\npackage a;\nmessage A { int32 x = 1; }\n')
    first = protos.fingerprint()
    assert protos.fingerprint() == first
    (tmp_path / "a.proto").write_text('syntax = "proto3";\npackage a;\nmessage A { int64 x = 1; }\n')
    assert protos.fingerprint() != first


def test_a_broken_proto_gives_protocs_message(tmp_path) -> None:
    (tmp_path / "broken.proto").write_text('syntax = "proto3";\nmessage Broken { int32 x = ; }\n')
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(protos.ProtoError) as raised:
        protos.compile_protos(out, proto_dir=tmp_path)
    assert "broken.proto:2" in str(raised.value)
    assert raised.value._render_traceback_() == [f"ProtoError: {raised.value}"]


def test_an_unknown_name_lists_the_known_protos() -> None:
    with pytest.raises(protos.ProtoError, match="known: .*calculator"):
        protos.load("no_such_service")


def test_a_learners_copy_of_the_course_uses_its_own_protos_and_cache(tmp_path) -> None:
    """On JupyterHub each learner has a copy: its protos/ and cache are the ones used."""
    copy = tmp_path / "learner" / "grpc-course"
    for folder in ("protos", "helpers", "lessons"):
        (copy / folder).mkdir(parents=True)
    assert protos.find_project_root(copy / "lessons") == copy
    assert protos.find_project_root(copy) == copy
    installed_from = Path(protos.__file__).resolve().parent.parent
    assert protos.find_project_root(tmp_path) == installed_from
