"""Shared helpers for the gRPC course notebooks.

Import this package before `grpc`: it quiets gRPC's C-level logging
(GRPC_VERBOSITY=NONE) unless you have set that variable yourself.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from helpers import protos  # noqa: E402
from helpers.checks import check  # noqa: E402
from helpers.explorer import explore  # noqa: E402
from helpers.servers import serve, serve_aio  # noqa: E402

__all__ = ["check", "explore", "protos", "serve", "serve_aio"]
