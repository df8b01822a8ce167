"""Regenerate the screenshots in this folder from the real app against the embedded sandbox.

Each screen is rendered by the app itself (Textual's headless driver) at 120x36 and saved as
SVG; where `rsvg-convert` is installed a PNG is made beside it. The home is throwaway; the
sandbox runs with the demo's small rate limit, so the monitor is shot while the sample job
waits for the budget's reset.

The SVGs name the web font Fira Code, which a browser fetches but rsvg-convert cannot: left to
itself, fontconfig then picks a proportional font and the grid falls apart ("^ppale tte"); and
rsvg-convert drops a no-break space that starts a run of text ("DryvIQ—  Jobs") unless the SVG
says xml:space="preserve". So each PNG is made from a copy that says so and names a monospace
font installed here, DejaVu Sans Mono, with Symbola for the symbols it lacks (⭘, ⏸). Setup
(Debian):

    apt-get install librsvg2-bin fonts-dejavu-core fonts-symbola
    python screenshots/make.py
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.widgets import Input

from core.demo import DEMO_LIMITS, PROCORE_CONNECTION, SHARE_CONNECTION, prepare_demo
from core.home import Home
from core.sandbox import SandboxThread, demo_world
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen
from tui.screens.browser import BrowserScreen
from tui.screens.monitor import MonitorScreen
from tui.service import AnalysisTarget, AppService

HERE = Path(__file__).resolve().parent
SIZE = (120, 36)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the state to shoot")
        await asyncio.sleep(0.25)


PNG_FONTS = "DejaVu Sans Mono, Symbola, monospace"  # installed: see the setup above
SVG_FONTS = ('"Fira Code"', "Fira Code, monospace")  # how Textual's SVG names its font


def missing_fonts() -> list[str]:
    """The PNG fonts fontconfig does not have (then their glyphs would come out wrong)."""
    if not shutil.which("fc-list"):
        return []
    installed = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True,
                               check=False).stdout
    return [font for font in PNG_FONTS.split(", ")[:2] if font not in installed]


def to_png(svg: Path) -> None:
    """A PNG of `svg`, drawn with the installed monospace fonts instead of the web font."""
    text = svg.read_text(encoding="utf-8")
    for named in SVG_FONTS:
        text = text.replace(named, PNG_FONTS)
    # rsvg-convert trims a cell's leading no-break space ("DryvIQ—  Jobs") unless told not to
    text = text.replace("<svg ", '<svg xml:space="preserve" ', 1)
    with tempfile.NamedTemporaryFile("w", suffix=".svg", encoding="utf-8") as local:
        local.write(text)
        local.flush()
        subprocess.run(["rsvg-convert", "-o", str(svg.with_suffix(".png")), local.name],
                       check=True)


def save(app: DryvIQApp, name: str) -> None:
    svg = HERE / f"{name}.svg"
    app.save_screenshot(svg.name, str(HERE))
    if shutil.which("rsvg-convert"):
        to_png(svg)
    print(f"wrote {svg.name}")


async def shoot(home: Home, sandbox: SandboxThread) -> None:
    service = await AppService.open(home)
    job = await prepare_demo(service.state, home, sandbox.url, sandbox.world)
    app = DryvIQApp(service)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(1)
        save(app, "jobs")
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        save(app, "help")
        await pilot.press("escape")

        await service.start(job.id)
        await app.push_screen(MonitorScreen(service, job.id))

        async def waiting() -> bool:
            return bool((await service.live(job.id)).stats.waiting_until)

        await until(waiting)
        await pilot.pause(1)
        save(app, "monitor")
        await service.wait(job.id)
        app.pop_screen()

        await app.switch_mode("connections")
        await pilot.pause(1)
        save(app, "connections")
        await app.push_screen(AddConnectionScreen(service))
        await pilot.pause(0.5)
        await pilot.click("#procore-custom")
        app.screen.query_one("#procore-client-id", Input).value = "my-client-id"
        secret = app.screen.query_one("#procore-client-secret", Input)
        secret.value = "shown-only-as-dots"
        secret.focus()
        await pilot.pause(0.5)
        save(app, "add-connection")
        app.pop_screen()

        await app.switch_mode("browser")
        await pilot.pause(0.5)
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        connection = await service.state.find_connection(PROCORE_CONNECTION)
        assert connection is not None
        await browser.browse(connection.id)
        await until(lambda: asyncio.sleep(0, browser.remote_tree is not None))
        tree = browser.remote_tree
        assert tree is not None
        folder = await tree.expand_path("Drawings/Architectural")
        await app.workers.wait_for_complete()
        await pilot.pause(0.5)
        tree.focus()
        tree.move_cursor(next(node for node in folder.children if node.data and node.data.entry
                              and node.data.entry.name == "A-101 Floor Plan Level 1.pdf"))
        await pilot.pause(1)
        save(app, "browser")

        # the sample project as copied to the share: what Procore holds, and how it compares
        target = AnalysisTarget(PROCORE_CONNECTION, "", SHARE_CONNECTION,
                                "Projects/Riverside Medical Center")
        await app.open_analysis(target, start=True)
        await service.wait_analysis(target)
        await pilot.pause(1)
        save(app, "analyze")

        app.open_builder(source=(PROCORE_CONNECTION, "/Drawings"),
                         destination=("Office Share", "/Drawings"))
        await pilot.pause(1)
        save(app, "job-builder")
    await service.close()


def main() -> None:
    if missing := missing_fonts():
        print(f"warning: {', '.join(missing)} not installed: the PNGs will show boxes or a "
              "broken grid (apt-get install fonts-dejavu-core fonts-symbola)")
    with tempfile.TemporaryDirectory(prefix="dryviq-shots-") as work, \
            SandboxThread(demo_world(DEMO_LIMITS)) as sandbox:
        asyncio.run(shoot(Home(Path(work) / "home"), sandbox))


if __name__ == "__main__":
    main()
