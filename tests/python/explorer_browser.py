#!/usr/bin/env python3
"""Drives Debian's headless Chromium through chromedriver (the W3C WebDriver protocol, Python's
standard library only) over a node's web explorer, as a review-visit team would use it:

  the certificate page (state "received", three custody steps), its "verify" action (the proof
  checked against the genesis), the participant page, the statistics page with its chart, and
  keyboard navigation (the first Tab reaches the skip link).

Screenshots go to --out; the page load times (navigation timing) are printed as JSON on the last
line. Exit status 0 when every check passed, 1 with the failed check on stderr.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


class WebDriver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.code} {e.read()[:500]!r}") from None

    def start(self, chromium, profile):
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1400", f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "goog:chromeOptions": {"binary": chromium, "args": args}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def s(self, path):
        return f"/session/{self.session}{path}"

    def go(self, url):
        self.call("POST", self.s("/url"), {"url": url})

    def find(self, css):
        v = self.call("POST", self.s("/element"), {"using": "css selector", "value": css})
        return next(iter(v.values()))

    def find_all(self, css):
        v = self.call("POST", self.s("/elements"), {"using": "css selector", "value": css})
        return [next(iter(e.values())) for e in v]

    def text(self, element):
        return self.call("GET", self.s(f"/element/{element}/text"))

    def click(self, element):
        self.call("POST", self.s(f"/element/{element}/click"), {})

    def script(self, source):
        return self.call("POST", self.s("/execute/sync"), {"script": source, "args": []})

    def keys(self, text):
        actions = [{"type": "key", "id": "kb", "actions": []}]
        for ch in text:
            actions[0]["actions"] += [{"type": "keyDown", "value": ch}, {"type": "keyUp", "value": ch}]
        self.call("POST", self.s("/actions"), {"actions": actions})

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", self.s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)

    def quit(self):
        if self.session:
            try:
                self.call("DELETE", self.s(""))
            except Exception:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the explorer's URL, like http://127.0.0.2:10001")
    ap.add_argument("--certificate", required=True)
    ap.add_argument("--participant", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    port = free_port()
    log = open(os.path.join(a.out, "chromedriver.log"), "w")
    driver_proc = subprocess.Popen([a.chromedriver, f"--port={port}"], stdout=log, stderr=log)
    profile = tempfile.mkdtemp(prefix="kp-explorer-chromium-")
    wd = WebDriver(port)
    timings = {}
    try:
        for _ in range(100):
            try:
                wd.call("GET", "/status")
                break
            except Exception:
                time.sleep(0.1)
        wd.start(a.chromium, profile)

        def load(name, path):
            wd.go(a.base + path)
            ms = wd.script("const t = performance.getEntriesByType('navigation')[0];"
                           " return t ? Math.round(t.loadEventEnd - t.startTime) : -1;")
            timings[name] = ms
            wd.screenshot(os.path.join(a.out, f"{name}.png"))

        number = a.certificate.replace("/", "%2F")
        load("certificate", f"/certificate/{number}")
        state = wd.text(wd.find("#state"))
        check(state == "received", f"certificate state {state!r}, expected 'received'")
        steps = wd.find_all("tr.step")
        check(len(steps) == 3, f"{len(steps)} custody steps, expected 3")
        kinds = [wd.text(wd.find_all("tr.step td")[i * 5]) for i in range(3)]
        check(kinds == ["certificate_issued", "shipment_sealed", "receipt_confirmed"], f"steps {kinds}")

        # Keyboard: the first Tab reaches the skip link; Enter follows it.
        wd.go(a.base + f"/certificate/{number}")
        wd.keys("\ue004")
        focused = wd.script("return document.activeElement && document.activeElement.textContent;")
        check(focused == "Skip to content", f"first Tab focused {focused!r}")

        wd.click(wd.find("#verify"))
        verdict = wd.text(wd.find("#verdict"))
        check(verdict == "Verified", f"verify says {verdict!r}")
        proven = wd.find_all("#proven tbody tr")
        check(len(proven) == 3, f"{len(proven)} steps proven, expected 3")
        timings["verify"] = wd.script("const t = performance.getEntriesByType('navigation')[0];"
                                      " return t ? Math.round(t.loadEventEnd - t.startTime) : -1;")
        wd.screenshot(os.path.join(a.out, "verify.png"))

        load("participant", f"/participant/{a.participant}")
        count = wd.text(wd.find("#certificate-count"))
        check(count.split()[0].isdigit() and int(count.split()[0]) >= 1, f"certificate count {count!r}")
        check(len(wd.find_all("#certificates tbody tr")) >= 1, "no certificate row")

        year = time.gmtime().tm_year
        load("statistics", f"/statistics?year={year}&participant={a.participant}")
        check(len(wd.find_all("#chart svg")) == 1, "no chart on the statistics page")
        check(len(wd.find_all("#world tbody tr")) == 4, "the world table has not four quarters")

        load("network", "/")
        height = wd.text(wd.find("#height"))
        check(height.isdigit() and int(height) >= 3, f"height {height!r}")
        load("anomalies", "/anomalies")
        check(len(wd.find_all("#anomalies")) == 1, "no anomaly table")
    except Check as e:
        print(f"explorer_browser: {e}", file=sys.stderr)
        return 1
    finally:
        wd.quit()
        driver_proc.terminate()
        try:
            driver_proc.wait(10)
        except subprocess.TimeoutExpired:
            driver_proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps({"load_ms": timings}))
    return 0


class Check(Exception):
    pass


def check(ok, why):
    if not ok:
        raise Check(why)


if __name__ == "__main__":
    sys.exit(main())
