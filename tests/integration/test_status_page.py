"""The status page in headless Chromium, driven over the DevTools protocol
(--remote-debugging-pipe: fds 3 and 4, NUL-separated JSON): the charts
draw as many points as the history holds after traffic, a member killed
and restarted shows both health transitions with their reasons in the
event list (reached by the page's own refresh), the drain/undrain/weight
controls work with the token and show the 401 without it, the token is in
sessionStorage and in no URL, and without JavaScript the page is readable
and the controls are hidden. A screenshot is written to
$RINGLB_TEST_ARTIFACTS (else meson's log dir, else a temporary one) and its
path printed."""

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import member  # noqa: E402

TOKEN = "page-s3cret"
# A member name that is markup, quotes, a slash and a percent sign: shown as
# text, and reached by the controls through its percent-encoded name.
HOSTILE = '<i>m 1"q/x%</i>\''

FAST_TCP_HEALTH = {"kind": "tcp", "interval": "200ms", "timeout": "500ms", "rise": 1, "fall": 1}
# The history samples every 2 s: waits for it are long, and longer on a loaded machine.
HISTORY_WAIT = 60 * harness.SCALE


class DevTools:
    """Chromium over --remote-debugging-pipe: it reads commands on its fd 3
    and writes answers and events on its fd 4, each a JSON text ended by a
    NUL byte. One page target, attached with flatten (commands carry its
    sessionId)."""

    def __init__(self, profile):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # High numbers, so that placing them at 3 and 4 in the child cannot
        # overwrite one with the other.
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 100)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(to_child_r)
        os.close(from_child_w)
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--window-size=1600,1200", f"--user-data-dir={profile}",
               "--remote-debugging-pipe", "about:blank"]
        shell = f'exec "$@" 3<&{high_r} 4>&{high_w} {high_r}<&- {high_w}>&-'
        self.proc = subprocess.Popen(["bash", "-c", shell, "bash", *cmd], pass_fds=(high_r, high_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=dict(os.environ, HOME=profile))
        os.close(high_r)
        os.close(high_w)
        self._cond = threading.Condition()
        self._answers = {}
        self.events = []
        self._next_id = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.session = None

    def _drain_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace"))
        self.proc.stderr.close()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                text, buf = buf.split(b"\0", 1)
                message = json.loads(text)
                with self._cond:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._cond.notify_all()

    def send(self, method, params=None, session=True, timeout=None):
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = (harness.WAIT * 3) if timeout is None else timeout
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._answers or self._closed, deadline):
                raise AssertionError(f"chromium did not answer {method} in time; stderr:\n{self.stderr()}")
            if ident not in self._answers:
                raise AssertionError(f"chromium exited during {method}; stderr:\n{self.stderr()}")
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise AssertionError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def stderr(self):
        return "".join(self._stderr[-40:])

    def open_page(self):
        targets = self.send("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")

    def navigate(self, url):
        with self._cond:
            seen = len(self.events)
        self.send("Page.navigate", {"url": url})

        def loaded():
            return any(e.get("method") == "Page.loadEventFired" for e in self.events[seen:])
        with self._cond:
            if not self._cond.wait_for(loaded, harness.WAIT * 3):
                raise AssertionError(f"{url} did not load in time; stderr:\n{self.stderr()}")

    def evaluate(self, expression):
        """The value of a JS expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:200]} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=None):
        """Polls a JS expression until it is truthy; returns its value."""
        return harness.wait_until(lambda: self.evaluate(expression), timeout or harness.WAIT * 3, what,
                                  interval=0.2)

    def requests(self):
        """Every request the page made: (method, url, headers)."""
        with self._cond:
            return [(e["params"]["request"]["method"], e["params"]["request"]["url"],
                     e["params"]["request"].get("headers", {}))
                    for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", session=False, timeout=harness.WAIT)
                self.proc.wait(harness.WAIT)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(harness.WAIT)
            os.close(self._to_child)
            self._reader.join(harness.WAIT)
            os.close(self._from_child)


# The page's charts as the browser has them: per <svg>, its data attributes,
# whether it has a box, and per <path> its data-points and the number of
# points its d draws (one per M or L command).
CHARTS_JS = """
[...document.querySelectorAll('svg.chart')].map(svg => ({
  series: svg.dataset.series, chart: svg.dataset.chart, samples: +svg.dataset.samples,
  title: svg.querySelector('title').textContent,
  width: svg.getBoundingClientRect().width,
  paths: [...svg.querySelectorAll('path')].map(p => ({
    metric: p.dataset.metric, points: +p.dataset.points,
    drawn: ((p.getAttribute('d') || '').match(/[ML]/g) || []).length,
    length: p.getTotalLength() })),
}))
"""

EVENTS_JS = """
[...document.querySelectorAll('#events tr[data-event]')].map(tr => ({
  id: +tr.dataset.event, kind: tr.dataset.kind, cells: [...tr.cells].map(td => td.textContent) }))
"""


def artifacts_dir():
    path = os.environ.get("RINGLB_TEST_ARTIFACTS") or os.environ.get("RINGLB_TEST_LOGDIR")
    if not path:
        path = tempfile.mkdtemp(prefix="ringlb-artifacts-")
    os.makedirs(path, exist_ok=True)
    return path


@unittest.skipUnless(shutil.which("chromium"), "chromium is not installed (scripts/setup --test installs it)")
class StatusPageTest(harness.RinglbTest):

    def start(self):
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.m2 = self.backend(mh.session_handler, name="m2")
        self.m3 = self.backend(mh.session_handler, name="m3")
        self.port, self.admin = harness.free_port(), harness.free_port()
        pool = {"balance": "round_robin", "health": FAST_TCP_HEALTH,
                "members": [member("m1", self.m1.address), member("m2", self.m2.address),
                            member(HOSTILE, self.m3.address)]}
        self.lb = self.start_ringlb(mh.build_config(
            [("front", self.port, "p", None)], {"p": pool},
            admin={"listen": f"127.0.0.1:{self.admin}", "token": TOKEN}))
        profile = tempfile.mkdtemp(prefix="ringlb-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.browser = DevTools(profile)
        self.addCleanup(self.browser.close)
        self.browser.open_page()
        self.url = f"http://127.0.0.1:{self.admin}/"

    def samples(self):
        return mh.status_json(self.admin)["history"]["samples"]

    def screenshot(self, name):
        png = base64.b64decode(self.browser.send("Page.captureScreenshot", {"format": "png",
                                                                           "captureBeyondViewport": True})["data"])
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        path = os.path.join(artifacts_dir(), name)
        with open(path, "wb") as f:
            f.write(png)
        print(f"\nscreenshot of the status page: {path} ({len(png)} bytes)", flush=True)

    def state(self, name):
        return mh.member_status(self.admin, "p", name)["state"]

    def test_charts_and_health_events(self):
        self.start()
        # Traffic through ringlb to both members, over several samples.
        first = self.samples()
        harness.wait_until(lambda: [mh.ask(self.port) for _ in range(10)] and self.samples() >= first + 3,
                           HISTORY_WAIT, "three samples taken during traffic")
        # The page's samples are the history's when it was rendered (or
        # refreshed in place since): read with its charts in one evaluation.
        before = self.samples()
        self.browser.navigate(self.url)
        page_samples, charts = self.browser.evaluate(
            f"[+document.getElementById('history').dataset.samples, {CHARTS_JS.strip()}]")
        after = self.samples()
        self.assertTrue(before <= page_samples <= after, (before, page_samples, after))
        self.assertEqual({(c["series"], c["chart"]) for c in charts},
                         {(s, k) for s in ("front", "p/m1", "p/m2", f"p/{HOSTILE}")
                          for k in ("connections", "throughput")})
        for c in charts:
            with self.subTest(series=c["series"], chart=c["chart"]):
                self.assertEqual(c["samples"], page_samples)
                self.assertGreater(c["width"], 0)
                for p in c["paths"]:
                    # Every series existed from the first sample on and had
                    # no gaps: a point per sample for levels, and for rates
                    # as many as History holds values (drawn = declared).
                    self.assertEqual(p["drawn"], p["points"], p)
                    self.assertGreaterEqual(p["points"], page_samples - 1, p)
                    if p["metric"] == "active":
                        self.assertEqual(p["points"], page_samples, p)
                    self.assertGreater(p["length"], 0, p)  # it drew a line
        front = next(c for c in charts if c["series"] == "front" and c["chart"] == "throughput")
        self.assertNotIn("bytes in (client to member) (now 0 B/s, max 0 B/s)", front["title"])

        # m2 dies and comes back on its port: the page, refreshing itself,
        # lists both transitions with their reasons, newest first.
        port = self.m2.port
        self.m2.close()
        harness.wait_until(lambda: self.state("m2") == "down", harness.WAIT * 3, "m2 down")
        self.m2 = self.backend_at(port)
        harness.wait_until(lambda: self.state("m2") == "up", harness.WAIT * 3, "m2 up again")
        navigations = self.navigations()

        def transitions():
            rows = [e for e in self.browser.evaluate(EVENTS_JS)
                    if e["kind"] == "health" and e["cells"][2] == "p/m2"]
            return rows if len(rows) >= 2 else None
        rows = harness.wait_until(transitions, HISTORY_WAIT, "both transitions of m2 on the page")
        self.assertEqual(self.navigations(), navigations, "the page was reloaded, not refreshed in place")
        up, down = rows[0], rows[1]  # newest first
        self.assertGreater(up["id"], down["id"])
        self.assertIn("down -> up", up["cells"][4])
        self.assertIn("up -> down", down["cells"][4])
        for row in (up, down):
            reason = row["cells"][4].split("->", 1)[1]
            self.assertRegex(reason, r"\(.+\)", row)  # the probe's reason
            self.assertRegex(row["cells"][0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", row)
        self.assertTrue(self.browser.evaluate("!!document.querySelector('a[href=\"/events\"]')"))
        self.screenshot("status_page_charts.png")

    def backend_at(self, port):
        b = harness.Backend(mh.session_handler, name="m2", port=port)
        self.addCleanup(b.close)
        return b

    def navigations(self):
        with self.browser._cond:
            return sum(1 for e in self.browser.events if e.get("method") == "Page.frameNavigated")

    def row(self, member):
        return f"document.querySelector('tr[data-member=' + CSS.escape({json.dumps(member)}) + ']')"

    def click(self, member, action, weight=None):
        row = self.row(member)
        set_weight = f"{row}.querySelector('input.weight').value = '{weight}';" if weight is not None else ""
        self.browser.evaluate(f"document.getElementById('control-result').textContent = '';"
                              f"{set_weight} {row}.querySelector('button[data-action=\"{action}\"]').click(); 1")
        return self.browser.wait_for("document.getElementById('control-result').textContent",
                                     f"the answer to {action} {member} on the page")

    def use_token(self, token):
        self.browser.evaluate(f"document.getElementById('token').value = {json.dumps(token)};"
                              "document.getElementById('use-token').click(); 1")

    def test_controls_token_and_no_javascript(self):
        self.start()
        self.browser.navigate(self.url)
        # Shown: it has a box (display:none on its cell leaves its own computed display as it was).
        visible = "document.querySelector('button[data-action=\"drain\"]').getClientRects().length > 0"
        self.assertTrue(self.browser.evaluate(visible))
        # No token yet, then a wrong one: 401 on the page, nothing changes.
        result = self.click("m1", "drain")
        self.assertIn("401", result)
        self.assertIn("enter the admin token", result)
        self.use_token("not-the-token")
        result = self.click("m1", "drain")
        self.assertIn("401", result)
        self.assertEqual(self.state("m1"), "up")
        # The right token: drained, and the page shows it.
        self.browser.evaluate("document.getElementById('forget-token').click(); 1")
        self.assertIsNone(self.browser.evaluate("sessionStorage.getItem('ringlb-admin-token')"))
        self.use_token(TOKEN)
        result = self.click("m1", "drain")
        self.assertIn("200", result)
        self.assertEqual(self.state("m1"), "draining")
        self.browser.wait_for("document.querySelector('tr[data-member=\"m1\"]').dataset.state === 'draining'",
                              "the page to show m1 draining")
        self.assertIn("200", self.click("m2", "weight", weight=7))
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["weight"], 7)
        self.assertIn("400", self.click("m2", "weight", weight=0))  # the server's error, shown
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["weight"], 7)
        self.screenshot("status_page_controls.png")
        self.assertIn("200", self.click("m1", "undrain"))
        self.assertEqual(self.state("m1"), "up")
        # The hostile name: text on the page, and its own controls reach it.
        self.assertEqual(self.browser.evaluate(f"{self.row(HOSTILE)}.cells[0].textContent"), HOSTILE)
        self.assertEqual(self.browser.evaluate(f"{self.row(HOSTILE)}.querySelectorAll('i').length"), 0)
        self.assertIn("200", self.click(HOSTILE, "drain"))
        self.assertEqual(self.state(HOSTILE), "draining")
        self.assertEqual(self.state("m1"), "up")

        # While a control has the focus (the operator typing a weight) the
        # page does not swap its contents; once it is left, it does.
        marked = "document.getElementById('history').dataset.marker === 'old'"
        self.browser.evaluate("document.getElementById('history').dataset.marker = 'old';"
                              f"{self.row('m2')}.querySelector('input.weight').focus(); 1")
        first = self.samples()
        harness.wait_until(lambda: self.samples() >= first + 2, HISTORY_WAIT, "two samples (two refresh periods)")
        self.assertTrue(self.browser.evaluate(marked), "the page was refreshed under a focused input")
        self.browser.evaluate("document.activeElement.blur(); 1")
        self.browser.wait_for(f"!({marked})", "the page to refresh again once the input lost the focus")

        # The token: in this tab's sessionStorage, in no URL, sent only as a header.
        self.assertEqual(self.browser.evaluate("sessionStorage.getItem('ringlb-admin-token')"), TOKEN)
        self.assertEqual(self.browser.evaluate("localStorage.length"), 0)
        self.assertNotIn(TOKEN, self.browser.evaluate("location.href"))
        requests = self.browser.requests()
        for method, url, _ in requests:
            self.assertNotIn(TOKEN, url)
        posts = [(url, headers) for method, url, headers in requests if method == "POST"]
        self.assertIn((f"{self.url}pools/p/members/m1/drain", f"Bearer {TOKEN}"),
                      [(url, headers.get("Authorization")) for url, headers in posts])

        # Without JavaScript: readable, refreshed by <meta>, no controls.
        self.browser.send("Emulation.setScriptExecutionDisabled", {"value": True})
        self.browser.navigate(self.url)
        self.assertEqual(self.browser.evaluate("document.querySelector('tr[data-member=\"m1\"]').dataset.state"),
                         "up")
        self.assertFalse(self.browser.evaluate(visible))
        self.assertFalse(self.browser.evaluate("document.getElementById('controls').getClientRects().length > 0"))
        self.assertTrue(self.browser.evaluate("document.querySelector('svg.chart').getClientRects().length > 0"))
        self.assertTrue(self.browser.evaluate("!!document.querySelector('meta[http-equiv=refresh]')"))


if __name__ == "__main__":
    harness.main()
