"""TLS certificates as an operator meets them: `--check` and a start refuse
a bad certificate or key with file:line:col naming the file, and warn of an
expiring certificate or a key every user can read; /metrics and /status
show each certificate's expiry; SIGHUP loads a certificate changed on disk
though the config text is the same, and a reload with a broken one keeps
the old. Keys and certificates are made here with the openssl command line."""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from test_config_errors import position, run  # noqa: E402


class Pki:
    """A CA and certificates it signs, in `directory`."""

    def __init__(self, directory):
        self.dir = directory
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Test CA", "-days", "60")

    def openssl(self, *args):
        r = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=harness.WAIT)
        if r.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def leaf(self, name, dns, *, days=30, serial=1, key=None):
        """name.pem (signed by the CA) and name.key (new, mode 0600, unless
        `key` names an existing key file to certify)."""
        key = key or f"{name}.key"
        if not os.path.exists(self.path(key)):
            self.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
            os.chmod(self.path(key), 0o600)
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{dns}\n")
        self.openssl("req", "-new", "-key", key, "-subj", f"/CN={dns}", "-out", f"{name}.csr")
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-set_serial", str(serial), "-days", str(days), "-extfile", f"{name}.ext",
                     "-out", f"{name}.pem")
        return self.path(f"{name}.pem"), self.path(key)


def tls_config(port, admin, member, cert, key):
    return f"""\
[global]
workers = 2
access_log = "off"

[admin]
listen = "127.0.0.1:{admin}"

[[listener]]
name = "edge"
bind = "127.0.0.1:{port}"
pool = "web"

[listener.tls]
certificates = [{{ cert = "{cert}", key = "{key}" }}]

[[listener.route]]
server_names = ["api.example.com"]
pool = "web"

[pool.web]
[[pool.web.member]]
name = "web-1"
address = "{member}"
"""


class TlsCertificatesTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        self.pki = Pki(self.tmp.name)
        self.cert, self.key = self.pki.leaf("edge", "edge.example.com", serial=0x1001)
        self.port, self.admin = harness.free_port(), harness.free_port()

    def config(self, cert=None, key=None):
        return tls_config(self.port, self.admin, harness.dead_address(), cert or self.cert, key or self.key)

    def test_check_names_a_key_that_does_not_match_at_its_position(self):
        _, other_key = self.pki.leaf("other", "other.example.com", serial=2)
        text = self.config(key=other_key)
        path = self.write_config(text)
        r = run("--check", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line, column = position(text, "key =")
        self.assertIn(f"{path}:{line}:{column}: private key file {other_key} does not match certificate "
                      f"{self.cert}\n", r.stderr)
        # A start refuses it the same way, before binding anything.
        lb = harness.Ringlb(path)
        self.addCleanup(lb.kill)
        self.assertEqual(lb.wait_exit(), 1)
        self.assertIn(f"{path}:{line}:{column}: private key file {other_key} does not match", lb.stderr_text())
        self.assertNotIn("ready:", lb.stderr_text())

    def test_check_names_a_missing_certificate_file(self):
        missing = self.pki.path("gone.pem")
        text = self.config(cert=missing)
        path = self.write_config(text)
        r = run("--check", path)
        self.assertEqual(r.returncode, 1)
        line, column = position(text, "cert =")
        self.assertIn(f"{path}:{line}:{column}: cannot read certificate file {missing}: No such file or directory",
                      r.stderr)

    def test_check_warns_of_an_expiring_certificate_and_an_open_key(self):
        cert, key = self.pki.leaf("soon", "soon.example.com", days=3, serial=3)
        os.chmod(key, 0o644)
        text = self.config(cert=cert, key=key)
        path = self.write_config(text)
        r = run("--check", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok:", r.stdout)
        cert_at, key_at = position(text, "cert ="), position(text, "key =")
        self.assertRegex(r.stderr, re.escape(f"{path}:{cert_at[0]}:{cert_at[1]}: warning: certificate {cert} "
                                             "(CN=soon.example.com) expires in ") + r"[23] days")
        self.assertIn(f"{path}:{key_at[0]}:{key_at[1]}: warning: private key file {key} is readable by every user "
                      "of this host (mode 0644)", r.stderr)

    def test_metrics_status_and_reload_of_a_changed_certificate(self):
        lb = self.start_ringlb(self.config())
        mh.wait_log(lb, "kTLS: ")
        m = mh.scrape(self.admin)
        for result in ("ok", "no_shared_cipher", "unknown_ca", "bad_certificate", "protocol", "timeout"):
            self.assertEqual(m.value("ringlb_tls_handshakes_total", listener="edge", result=result), 0, result)
        self.assertEqual(m.value("ringlb_tls_resumed_handshakes_total", listener="edge"), 0)
        self.assertEqual(m.value("ringlb_tls_handshake_duration_seconds_count", listener="edge"), 0)
        self.assertEqual(m.value("ringlb_listener_routed_total", listener="edge", route="sni"), 0)
        self.assertEqual(m.value("ringlb_listener_routed_total", listener="edge", route="default"), 0)
        left = m.value("ringlb_tls_certificate_expiry_seconds", listener="edge", file=self.cert,
                       subject="CN=edge.example.com")
        self.assertAlmostEqual(left, 30 * 86400, delta=3600)
        (certificate,) = mh.status_json(self.admin)["certificates"]
        self.assertEqual(certificate["listener"], "edge")
        self.assertEqual(certificate["file"], self.cert)
        self.assertEqual(certificate["names"], ["edge.example.com"])
        self.assertEqual(certificate["serial"], "1001")
        self.assertAlmostEqual(certificate["expires_in_seconds"], 30 * 86400, delta=3600)
        self.assertRegex(certificate["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        page = mh.get(self.admin, "/").body.decode()
        self.assertIn('<tr data-certificate="' + self.cert + '">', page)

        # The same config text, a new certificate in the same file: SIGHUP serves it.
        self.pki.leaf("edge", "edge.example.com", serial=0x1002)
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "reloaded", count=1)
        self.assertEqual(mh.status_json(self.admin)["certificates"][0]["serial"], "1002")

        # A key that no longer matches: the reload is refused, the running certificate stays.
        self.pki.leaf("stray", "stray.example.com", serial=4)
        os.replace(self.pki.path("stray.key"), self.key)
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "failed; the running config stays", count=1)
        refused = mh.wait_log(lb, f"private key file {self.key} does not match certificate {self.cert}")
        self.assertIn("ringlb.toml:", refused)
        self.assertEqual(mh.status_json(self.admin)["certificates"][0]["serial"], "1002")


if __name__ == "__main__":
    harness.main()
