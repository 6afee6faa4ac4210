"""The request explorer (helpers.explore) works in real JupyterLab.

A scratch notebook starts the reference user service with reflection and shows
`helpers.explore(server.target)`; the test picks methods in the drop-downs,
types into the form, presses Send and reads replies and statuses on the page.
JupyterLab and Chromium are started by test_lab.py's fixtures; the notebook is
created through JupyterLab's contents API, so no project file is touched.
"""

from __future__ import annotations

import json
import urllib.request

from playwright.sync_api import Locator, Page
from test_lab import ARTIFACTS, browser, lab, run_all  # noqa: F401 (fixtures)

NOTEBOOK = "explorer_scratch.ipynb"
CELLS = [
    """import helpers
from grpc_reflection.v1alpha import reflection

from helpers.reference import UserService, users_pb2_grpc


def add_reflection(grpc_server) -> None:
    reflection.enable_server_reflection(["users.UserService", reflection.SERVICE_NAME], grpc_server)


service = UserService()
service.store.create("Ada", "ada@example.com")
server = helpers.serve(users_pb2_grpc.add_UserServiceServicer_to_server, service,
                       name="users", setup=add_reflection)""",
    "helpers.explore(server.target)",
]


def create_notebook(url: str) -> None:
    """Write the scratch notebook into JupyterLab's folder through its contents API."""
    base, token = url.split("|")
    cells = [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [],
              "execution_count": None} for source in CELLS]
    content = {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
               "display_name": "Python 3", "language": "python"}}, "nbformat": 4,
               "nbformat_minor": 5}
    body = json.dumps({"type": "notebook", "format": "json", "content": content}).encode()
    request = urllib.request.Request(f"{base}/api/contents/{NOTEBOOK}?token={token}", data=body,
                                     method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status in (200, 201)


def pick(explorer: Locator, method: str) -> None:
    """Choose `method` in the second drop-down (the first one is the service)."""
    explorer.locator(".widget-dropdown select").nth(1).select_option(method)
    explorer.locator(".explorer-field-id, .explorer-field-name").first.wait_for()


def fill(explorer: Locator, field: str, value: str) -> None:
    box = explorer.locator(f".explorer-field-{field} input")
    box.fill(value)
    box.press("Tab")  # a change event as well as input events: the kernel sees the value


def send(explorer: Locator, expect: str) -> str:
    """Press Send, wait for a status containing `expect`, return status and output text."""
    explorer.get_by_role("button", name="Send").click()
    status = explorer.locator(".explorer-status", has_text=expect)
    status.wait_for(timeout=30_000)
    return status.inner_text() + "\n" + explorer.locator(".explorer-output").inner_text()


def test_explorer_sends_calls_and_shows_replies_and_statuses(lab: str, browser) -> None:  # noqa: F811
    create_notebook(lab)
    page: Page = browser.new_page(viewport={"width": 1280, "height": 1000})
    text = run_all(page, lab, NOTEBOOK)
    assert "Traceback" not in text, text[-2000:]
    explorer = page.locator(".jp-NotebookPanel:visible .explorer")
    explorer.wait_for(timeout=30_000)
    assert explorer.locator(".widget-dropdown select").first.input_value() == "users.UserService"

    pick(explorer, "CreateUser")
    fill(explorer, "name", "Grace")
    fill(explorer, "email", "grace@example.com")
    shown = send(explorer, "OK")
    assert '"name": "Grace"' in shown and '"id": "2"' in shown, shown

    pick(explorer, "GetUser")
    fill(explorer, "id", "1")
    shown = send(explorer, "OK")
    assert '"name": "Ada"' in shown and "1 reply" in shown, shown

    fill(explorer, "id", "99")
    shown = send(explorer, "NOT_FOUND")
    assert "❌ NOT_FOUND: no user with id 99" in shown and "no reply" in shown, shown
    assert " ms)" in shown  # the time taken

    pick(explorer, "CreateUser")
    fill(explorer, "name", "Eve")
    fill(explorer, "email", "not-an-email")
    shown = send(explorer, "INVALID_ARGUMENT")
    assert "email: must look like name@example.com" in shown
    assert "grpc-status-details-bin" in shown  # the rich error detail, decoded

    ARTIFACTS.mkdir(exist_ok=True)
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))
    page.close()
