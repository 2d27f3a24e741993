"""The playground's two speed targets, measured in a real browser (Debian's Chromium).

    python benchmarks/playground.py [--seconds 10] [--json results/playground.json]

A 2-8-8-2 tanh network (TensorFlow Playground's start, wider) trains on 500 points of
the circle set (1000 drawn, half held out), SGD at rate 0.03, batch 10, on the CPU:

1. with the page open and playing for ``--seconds``: page updates per second (pictures
   the page received and drew) and training samples per second (epochs gained times
   500, over the wall-clock, everything the server does besides training included);
2. ``backprop train`` with the command line the page shows, for as many epochs: its
   own samples per second (the summary's ``samples_per_s``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import threading
import time

from playwright.sync_api import sync_playwright

from backprop.playground import make_server

SETTINGS = "data=circle&n=1000&test=0.5&hidden=8,8&activation=tanh&optimizer=sgd&lr=0.03&batch_size=10"
N_TRAIN = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    server = make_server("127.0.0.1", 0, None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        page.goto(server.url + "#" + SETTINGS)
        page.wait_for_function("window.backpropPlayground.picture !== null")
        page.click("#play")
        page.wait_for_function("window.backpropPlayground.picture.epoch > 5")
        state = ("[window.backpropPlayground.pictures, window.backpropPlayground.picture.epoch, "
                 "performance.now()]")
        pictures0, epoch0, t0 = page.evaluate(state)
        time.sleep(args.seconds)
        pictures1, epoch1, t1 = page.evaluate(state)
        command = page.text_content("#command")
        browser.close()
    server.shutdown()
    server.stop_all()
    seconds = (t1 - t0) / 1000
    page_rate = {"updates_per_s": (pictures1 - pictures0) / seconds,
                 "samples_per_s": (epoch1 - epoch0) * N_TRAIN / seconds, "epochs": epoch1 - epoch0}
    words = shlex.split(command)
    words[words.index("--epochs") + 1] = str(page_rate["epochs"])
    done = subprocess.run([sys.executable, "-m", "backprop", *words[1:], "--json", "--quiet"],
                          capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    cli = {"samples_per_s": summary["samples_per_s"], "command": " ".join(words)}
    report = {"page": page_rate, "cli": cli,
              "ratio": page_rate["samples_per_s"] / summary["samples_per_s"]}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
