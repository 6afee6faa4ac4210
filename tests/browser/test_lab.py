"""make test-browser: JupyterLab in headless Chromium runs lesson 03, its solution, and lesson 02;
the solutions of 03 and 06 render their Mermaid diagrams and wire-tap timelines as SVG.

A learner's view, end to end: JupyterLab opens the notebook, Run > Run All
Cells runs it, and the page must show ❌ lines for the unsolved lesson and ✅
lines with the right results for the solution. Copies of the notebooks are
served from a temporary folder so that autosave never touches the project.
Screenshots go to artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

if not Path(CHROMIUM).exists():
    pytest.fail("Chromium is missing: install Debian's package with `apt-get install chromium`",
                pytrace=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_server(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """Start JupyterLab on a copy of lessons/ and solutions/; yield its base URL with token."""
    root = tmp_path_factory.mktemp("lab")
    for folder in ("lessons", "solutions"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder)
    home = tmp_path_factory.mktemp("jupyter-home")
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell, so that the whole notebook's output is in the page.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True"]
    if os.getuid() == 0:
        command.append("--allow-root")
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}")
        yield f"{base}|{token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


NOTEBOOK_DONE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext.session) return false;
  const kernel = panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle') return false;
  const cells = Array.from(panel.content.model.cells);
  return cells.filter(c => c.type === 'code').every(c => c.executionCount !== null);
}"""

KERNEL_READY = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return !!(session && session.kernel && session.kernel.status === 'idle');
}"""


def run_all(page: Page, lab: str, notebook: str) -> str:
    """Open `notebook` in JupyterLab, Run All Cells, return the notebook's visible text."""
    base, token = lab.split("|")
    workspace = Path(notebook).stem + "-" + Path(notebook).parent.name  # no tabs carried over
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{notebook}?token={token}")
    page.wait_for_function(KERNEL_READY, timeout=120_000)
    page.evaluate("window.jupyterapp.commands.execute('runmenu:run-all')")
    page.wait_for_function(NOTEBOOK_DONE, timeout=180_000, polling=500)
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook").inner_text()


def screenshot(page: Page, text: str, name: str) -> None:
    """Scroll to the first check result and save a screenshot in artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output", has_text=text).first \
        .scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / name))


def test_unsolved_lesson_shows_failed_checks(lab: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    text = run_all(page, lab, "lessons/03_calculator.ipynb")
    screenshot(page, "❌", "lesson03_unsolved.png")
    assert text.count("❌ Exercise 3.") == 7, text[-2000:]
    assert "✅" not in text
    assert "not solved yet. Write your code" in text
    assert "Hint" not in text, "no hint before the learner has tried"
    assert "CheckFailed: Exercise 3.1 is not solved yet" in text
    # Cells that need an unsolved exercise say so in one line, with no traceback.
    assert "⏭ This cell needs Exercise 3.1, which is not solved yet." in text
    assert "Traceback" not in text and "_InactiveRpcError" not in text
    # Cells that do not need an exercise still ran: the seed's crash is shown.
    assert "StatusCode.UNKNOWN" in text
    page.close()


WRONG_ATTEMPT = [
    "import helpers\nfrom helpers import check\nfrom helpers.reference import Calculator, calculator_pb2",
    "class WrongAdd(Calculator):\n    def Add(self, request, context):\n"
    "        return calculator_pb2.AddReply(result=request.a - request.b)",
    'check("3.1", WrongAdd)',
]


def put_notebook(lab: str, path: str, sources: list[str]) -> None:
    """Save a notebook with these code cells into the lab's folder (Jupyter's contents API)."""
    import nbformat

    base, token = lab.split("|")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    body = json.dumps({"type": "notebook", "format": "json",
                       "content": json.loads(nbformat.writes(notebook))}).encode()
    request = urllib.request.Request(f"{base}/api/contents/{path}?token={token}", data=body,
                                     method="PUT", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()


def test_a_wrong_attempt_shows_its_hint_only_when_clicked(lab: str, browser) -> None:
    put_notebook(lab, "hint_scratch.ipynb", WRONG_ATTEMPT)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    text = run_all(page, lab, "hint_scratch.ipynb")
    assert "❌ Exercise 3.1" in text and "the reference gives 5, yours gives -1" in text
    from helpers.checks import EXERCISES

    hint_text = EXERCISES["3.1"].hint
    summary = page.locator(".jp-NotebookPanel:visible details.course-hint summary").first
    summary.wait_for(timeout=30_000)
    hint = page.locator(".jp-NotebookPanel:visible details.course-hint", has_text="Hint").first
    assert summary.inner_text().startswith("Hint")
    hidden_text = hint.locator("div", has_text=hint_text[:40])
    assert not hidden_text.is_visible(), "the hint shows before a click"
    summary.click()
    assert hidden_text.is_visible(), "the hint stays hidden after a click"
    assert hint.get_attribute("open") is not None
    screenshot(page, "❌", "hint_opened.png")
    page.close()


def test_solution_shows_passed_checks_and_results(lab: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    text = run_all(page, lab, "solutions/03_calculator.ipynb")
    screenshot(page, "✅", "solution03.png")
    assert text.count("✅ Exercise 3.") == 7, text[-2000:]
    assert "❌" not in text and "CheckFailed" not in text
    for result in ["20 + 10 = 30", "7 / 2 = 3.5", "error INVALID_ARGUMENT: cannot divide by zero",
                   "StatusCode.DEADLINE_EXCEEDED", "(42, {'x-request-id': 'req-42'"]:
        assert result in text
    page.close()


def test_wire_inspector_widget_renders_in_lesson_02(lab: str, browser) -> None:
    """The ipywidgets view of lesson 02's inspector is live in JupyterLab, not just its text."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    run_all(page, lab, "solutions/02_protocol_buffers.ipynb")
    widget = page.locator(".jp-NotebookPanel:visible .jupyter-widgets").first
    widget.wait_for(timeout=30_000)
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "solution02_inspector.png"))
    assert "0a" in widget.inner_text()
    page.close()


def mermaid_blocks(notebook: str) -> int:
    """How many ```mermaid blocks the notebook's Markdown cells hold."""
    import nbformat

    cells = nbformat.read(PROJECT_ROOT / notebook, as_version=4).cells
    return sum(cell.source.count("```mermaid") for cell in cells if cell.cell_type == "markdown")


@pytest.mark.parametrize("notebook", ["solutions/03_calculator.ipynb",
                                      "solutions/06_streaming.ipynb"])
def test_diagrams_and_wire_timelines_render_as_svg(lab: str, browser, notebook: str) -> None:
    """Every Mermaid block becomes an SVG image, and every wire tap's timeline an inline SVG."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    text = run_all(page, lab, notebook)
    assert "❌" not in text and "Traceback" not in text
    panel = ".jp-NotebookPanel:visible"
    expected = mermaid_blocks(notebook)
    assert expected >= 1
    diagrams = page.locator(f"{panel} .jp-RenderedMermaid img[src^='data:image/svg+xml']")
    diagrams.nth(expected - 1).wait_for(state="attached", timeout=60_000)  # rendered async
    assert diagrams.count() == expected
    assert page.locator(f"{panel} .jp-RenderedMermaid.jp-mod-warning").count() == 0, \
        "a Mermaid block failed to parse"
    first = diagrams.first
    assert first.evaluate("image => image.naturalWidth") > 0, "the diagram's SVG did not load"
    timelines = page.locator(f"{panel} .jp-OutputArea-output svg.wiretap-timeline")
    assert timelines.count() >= 3
    arrows = timelines.first.locator("g")
    assert arrows.count() >= 1 and "stream" in (timelines.first.text_content() or "")
    ARTIFACTS.mkdir(exist_ok=True)
    stem = Path(notebook).stem[:2]
    first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"diagram_lesson{stem}.png"))
    timelines.first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"wiretap_timeline_lesson{stem}.png"))
    page.close()
