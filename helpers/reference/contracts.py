"""A .proto's descriptor from its text, for contract tests (lesson 13).

    old = file_descriptor(OLD_TEXT)       # a descriptor_pb2.FileDescriptorProto
    old.message_type[0].field[0].number   # what protoc understood

`protoc` (from grpcio-tools) compiles the text in a temporary folder and writes the
descriptor set; nothing is imported, so two versions of one file never clash.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2


def file_descriptor(proto_text: str, file_name: str = "contract.proto") -> descriptor_pb2.FileDescriptorProto:
    """Compile `proto_text` with protoc; return its FileDescriptorProto (ValueError if it does not compile)."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, file_name).write_text(proto_text)
        out = Path(folder, "set.pb")
        result = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={folder}",
             f"--descriptor_set_out={out}", file_name],
            capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise ValueError(f"protoc refused the text: {result.stderr.strip()}")
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return descriptor_set.file[0]
