"""The playground page in a real browser: Debian's Chromium driven by Playwright.

Nothing is downloaded: Playwright starts the system's Chromium (``.ci/run`` installs
it). The checks read canvas pixels, not just the DOM.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from backprop.playground import make_server

playwright = pytest.importorskip("playwright.sync_api",
                                 reason="playwright is not installed: pip install -e '.[test]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Chromium is not installed: apt-get install -y chromium")
SHOTS = os.environ.get("PLAYGROUND_SHOTS")  # a folder to keep the screenshots in


@pytest.fixture(scope="module")
def served():
    srv = make_server("127.0.0.1", 0, None)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.stop_all()
    srv.server_close()


@pytest.fixture(scope="module")
def url(served):
    return served.url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True,
                                  bypass_csp=True)
    tab = context.new_page()
    tab.problems = []
    # (the readback hint is about this test's own getImageData calls)
    tab.on("console", lambda m: tab.problems.append(m.text)
           if m.type in ("error", "warning") and "willReadFrequently" not in m.text else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    context.close()


# Colour counts of a canvas, read in the page: (pixels, blue-ish, orange-ish, dark).
COUNT = """(id) => {
  const c = document.getElementById(id), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let blue = 0, orange = 0, dark = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (b > r + 40) blue++;
    if (r > b + 60) orange++;
    if (r + g + b < 200 && d[i + 3] > 0) dark++;
  }
  return [d.length / 4, blue, orange, dark];
}"""


def _shot(tab, tmp_path, name):
    folder = SHOTS or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    tab.screenshot(path=path, full_page=True)
    return path


def _epoch(tab) -> int:
    return int(tab.text_content("#epoch").replace(",", ""))


def test_play_trains_and_draws(page, url, tmp_path):
    page.goto(url + "#data=gauss&hidden=8,8&optimizer=adam&lr=0.03")
    page.wait_for_function("document.getElementById('updates').textContent !== ''")  # the first picture
    pixels, blue, orange, _ = page.evaluate(COUNT, "heatmap")
    assert blue > 0.05 * pixels and orange > 0.001 * pixels  # the untrained output, with the points
    page.click("#play")
    page.wait_for_function("Number(document.getElementById('epoch').textContent.replace(/,/g, '')) > 40",
                           timeout=20000)
    page.wait_for_timeout(300)
    pixels, blue, orange, _ = page.evaluate(COUNT, "heatmap")
    assert blue > 0.2 * pixels and orange > 0.2 * pixels  # two clouds: both sides of a boundary
    _, _, _, dark = page.evaluate(COUNT, "curves")
    assert dark > 50  # the test loss is drawn (in black)
    _, net_blue, net_orange, _ = page.evaluate(COUNT, "network")
    assert net_blue + net_orange > 1000  # unit pictures and links
    assert float(page.text_content("#test-loss")) < 0.3
    page.click("#play")  # pause
    page.wait_for_function("document.getElementById('play').getAttribute('aria-label') === 'play'")
    held = _epoch(page)
    page.wait_for_timeout(500)
    assert _epoch(page) - held <= 1
    path = _shot(page, tmp_path, "playground-1280.png")
    assert os.path.getsize(path) > 10_000
    assert page.problems == []


def test_a_changed_setting_takes_effect(page, url):
    page.goto(url + "#data=circle&hidden=4,2")
    page.wait_for_function("document.getElementById('status').textContent.includes('press play')")
    assert "--hidden 4,2" in page.text_content("#command")
    page.click("#add-layer")
    page.wait_for_function("document.getElementById('command').textContent.includes('--hidden 4,2,2')")
    assert "hidden=4%2C2%2C2" in page.url or "hidden=4,2,2" in page.url  # the address keeps the set-up
    page.select_option("#activation", "relu")
    page.wait_for_function("document.getElementById('command').textContent.includes('--activation relu')")
    page.select_option("#dropout", "0.2")  # a new run, with dropout after each hidden layer
    page.wait_for_function("document.getElementById('command').textContent.includes('--dropout 0.2')")
    page.click("[data-feature='x1^2']")
    page.wait_for_function("document.getElementById('command').textContent.includes('x1^2')")
    page.select_option("#lr", "0.3")  # a live change: the run goes on, the command follows
    page.wait_for_function("document.getElementById('status').textContent.includes('lr is now 0.3')")
    page.click("#play")
    page.wait_for_function("document.getElementById('command').textContent.includes('--lr 0.3')")
    # the link reproduces the set-up
    again = page.context.new_page()
    again.goto(page.url)
    again.wait_for_function("document.getElementById('status').textContent.includes('press play')")
    assert again.input_value("#activation") == "relu" and "--hidden 4,2,2" in again.text_content("#command")
    assert again.input_value("#dropout") == "0.2"
    again.close()
    assert page.problems == []


def test_save_checkpoint_downloads_a_file_backprop_loads(page, url, tmp_path):
    from backprop import runner

    page.goto(url + "#data=spiral&hidden=6&optimizer=lbfgs")
    page.wait_for_function("document.getElementById('status').textContent.includes('press play')")
    page.click("#step")
    page.wait_for_function("Number(document.getElementById('epoch').textContent.replace(/,/g, '')) >= 1")
    with page.expect_download() as download:
        page.click("#save")
    path = str(tmp_path / "saved.safetensors")
    download.value.save_as(path)
    model, transform, head, extra = runner.restore(path)
    assert model.epoch >= 1 and extra["train"]["settings"]["optimizer"] == "lbfgs"
    assert page.problems == []


def test_narrow_window_has_no_overlapping_controls(page, url, tmp_path):
    page.set_viewport_size({"width": 400, "height": 900})
    page.goto(url)
    page.wait_for_function("document.getElementById('status').textContent.includes('press play')")
    controls = ("header .field, header .readout, header .transport, #datasets button, .slider, "
                "#features label, #unit-controls span, canvas, .keep button")
    boxes = page.evaluate("""(controls) => [...document.querySelectorAll(controls)]
        .filter(e => e.offsetParent !== null).map(e => { const r = e.getBoundingClientRect();
          return [r.left, r.top, r.right, r.bottom, e.id || e.textContent.trim().slice(0, 12)]; })""",
                          controls)
    overlaps = [(a[4], b[4]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1]
    assert overlaps == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    _shot(page, tmp_path, "playground-400.png")
    assert page.problems == []


def test_play_pressed_before_the_run_exists_is_kept(page, served, monkeypatch):
    """A busy machine makes the page's start slow: a click on play meanwhile still trains."""
    info, made = served.info, served.new_session

    def slow_info():
        time.sleep(0.5)
        return info()

    def slow_run(payload):
        time.sleep(1.5)
        return made(payload)

    monkeypatch.setattr(served, "info", slow_info)
    monkeypatch.setattr(served, "new_session", slow_run)
    page.goto(served.url + "#data=gauss&hidden=4")
    page.click("#play")  # at once: neither the page's settings nor its run exist yet
    assert page.evaluate("window.backpropPlayground.run") is None
    assert page.get_attribute("#play", "aria-label") == "pause"  # it shows the click was taken
    page.wait_for_function("Number(document.getElementById('epoch').textContent.replace(/,/g, '')) > 5",
                           timeout=20000)
    assert page.get_attribute("#play", "aria-label") == "pause" and "training" in page.text_content("#status")
    page.click("#play")
    page.wait_for_function("document.getElementById('play').getAttribute('aria-label') === 'play'")
    assert page.problems == []


def test_a_tensorflow_playground_link_opens_the_page_and_copies_back(page, url):
    from backprop.edges import tfplayground
    from backprop.playground import session

    link = ("https://playground.tensorflow.org/#activation=relu&batchSize=20&dataset=spiral&learningRate=0.01&"
            "noise=10&networkShape=8,8,4&percTrainData=70&x=true&y=true&sinX=true&sinY=true&seed=12345&"
            "regularization=L2&regularizationRate=0.001")
    page.goto(session.page_address(url, session.page_settings(tfplayground.read(link))))  # as --from opens it
    page.wait_for_function("document.getElementById('status').textContent.includes('press play')")
    command = page.text_content("#command")
    for words in ("--hidden 8,8,4", "--activation relu", "--optimizer sgd", "--lr 0.01", "--val-split 0.3",
                  "--weight-decay 0.001", "--batch-size 20", "--features 'x1,x2,sin(x1),sin(x2)'",
                  "spiral:n=500,noise=0.1,test=0,seed=12345", "--seed 12345"):
        assert words in command, words
    page.click("#copy-tf")
    page.wait_for_function("!document.getElementById('status').textContent.includes('press play')")
    copied = page.evaluate("window.backpropPlayground.tfLink")
    assert copied["left_out"] == []
    assert tfplayground.read(copied["url"]).train_settings() == tfplayground.read(link).train_settings()
    assert page.problems == []
