"""Running a whole solution twice in one kernel works (servers replaced, nothing left over).

The test itself is `solutions/NN.ipynb::runs twice in one kernel`, added by the
project's conftest.py after nbval's cells: nbval's run is the first run, and
`run_again` below runs every cell once more in the same kernel. So each solution
runs twice in all, not three times.
"""

from __future__ import annotations

from typing import Any

from jupyter_client.manager import start_new_kernel


def run_again(client: Any, sources: list[str], timeout: float = 300) -> list[str]:
    """Run each cell's source in the kernel behind `client`; return what failed.

    Each failure names the cell, the error, and what the cell displayed (a
    check's ❌ line says why it failed).
    """
    errors = []
    for index, source in enumerate(sources):
        shown: list[str] = []
        failed: list[str] = []

        def collect(message: dict) -> None:
            content = message["content"]
            if message["msg_type"] in ("display_data", "execute_result"):
                shown.append(content["data"].get("text/plain", ""))
            elif message["msg_type"] == "error":
                failed.append(f"{content['ename']}: {content['evalue']}")

        reply = client.execute_interactive(source, timeout=timeout, allow_stdin=False,
                                           output_hook=collect, stop_on_error=False)
        if failed or reply["content"]["status"] != "ok":
            errors.append(f"cell {index}: {'; '.join(failed) or reply['content']['status']}\n"
                          + "\n".join(shown))
    return errors


def test_a_second_run_that_fails_is_reported() -> None:
    """A notebook that only works once, and one that works twice, in a real kernel."""
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        once = ["assert 'seen' not in globals(), 'ran before'\nseen = True", "print('ok')"]
        for source in once:
            client.execute_interactive(source, timeout=60)
        errors = run_again(client, once)
        assert len(errors) == 1 and errors[0].startswith("cell 0: AssertionError: ran before")
        assert run_again(client, ["x = 1", "display(x + 1)"]) == []
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
