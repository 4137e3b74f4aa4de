"""Proxy throughput: consentgate vs nginx + sub_filter, side by side in one run.

Starts, all on loopback, one worker each:
  - an upstream: nginx serving three files from a temp dir (a 70 KB HTML page with
    gtag.js, a 70 KB JavaScript asset, a 1.1 MB HTML page — from the shared corpus);
  - nginx as reverse proxy with ``sub_filter`` injecting a script tag into HTML;
  - ``consentgate serve --upstream`` (rewriting on: the visitor has no consent, so
    trackers are neutralized and the banner injected);
and drives each with the same bounded load (wrk: 1 thread, 32 connections). Target
``gzpage`` is the 70 KB page for a visitor sending ``Accept-Encoding: gzip``.
Reports req/s, p50/p99 latency, server CPU time per request (user + system from /proc,
comparable when the machine is shared), peak RSS of the server processes, and ratios.

    python3 bench/proxy.py [--duration 10] [--connections 32] [--only page] [--only gzpage]
                           [--protocols]

``--protocols`` adds what owning uvicorn's HTTP protocol costs (consentgate/corked.py):
consentgate with uvicorn's own response-head code instead of ``LeanCycle`` (the edge
protocol otherwise unchanged), and with uvicorn's plain httptools protocol (no edge
limits, timeouts or framing checks; one write per head and body).

Needs ``nginx`` and ``wrk`` (Debian: ``apt-get install -y nginx wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import CORPUS  # noqa: E402

FILES = {
    "page": ("page.html", CORPUS / "pages" / "006.html"),  # 71,975 bytes, gtag.js
    "asset": ("app.js", None),  # 70 KB JavaScript, not HTML: streamed untouched
    "big": ("big.html", CORPUS / "pages" / "007.html"),  # 1,160,848 bytes
    # the same page for a visitor who accepts gzip (as every browser does): the upstream
    # compresses it, nginx's proxy asks for it uncompressed and gzips its output
    # (gzip_comp_level 1), consentgate decodes, rewrites and re-encodes (level 6)
    "gzpage": ("page.html", CORPUS / "pages" / "006.html"),
}
#: request headers wrk sends per target
HEADERS = {"gzpage": ("Accept-Encoding: gzip",)}
SNIPPET = '<script src="/_consent/banner.js" defer></script>'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def nginx_conf(tmp: Path, name: str, body: str) -> Path:
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"""
user root;
worker_processes 1;
daemon off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  include /etc/nginx/mime.types;
  client_body_temp_path {tmp}/{name}-body;
  proxy_temp_path {tmp}/{name}-proxy;
  fastcgi_temp_path {tmp}/{name}-fcgi;
  uwsgi_temp_path {tmp}/{name}-uwsgi;
  scgi_temp_path {tmp}/{name}-scgi;
  keepalive_requests 1000000;
{body}
}}
"""
    )
    return conf


def _tree(pid: int) -> list[int]:
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    return pids


def tree_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and its children (nginx: its worker)."""
    ticks = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_peak(pid: int) -> int:
    """Current RSS (KiB) of a process and its children."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_rss_peak(self.pid))
            time.sleep(0.05)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(
    url: str, duration: int, connections: int, headers: tuple[str, ...] = ()
) -> dict[str, float]:
    extra = [arg for h in headers for arg in ("-H", h)]
    out = subprocess.run(
        ["wrk", *extra, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": float(requests),
        "p50": p50,
        "p99": p99,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "sockerr": 1.0 if sock else 0.0,
    }


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return bytes(r.read())


#: ``python -c`` launchers of ``consentgate serve`` with a protocol variant (--protocols)
VARIANTS = {
    "lean": None,
    "uvicorn-heads": "import consentgate.corked as c; c.LeanCycle = c.RequestResponseCycle",
    "uvicorn-protocol": "import consentgate.corked as c; c.protocol_class = lambda: 'httptools'",
}


def start_consentgate(
    tmp: Path, name: str, upstream: int, port: int, cache_mb: int, variant: str = "lean"
) -> subprocess.Popen[bytes]:
    config = tmp / f"{name}.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp / name}"\n'
        f"rewrite_cache_mb = {cache_mb}\n"
        f'[[sites]]\nid = "bench"\nupstream = "http://127.0.0.1:{upstream}"\n'
    )
    cmd = [sys.executable, "-m", "consentgate", "serve", "--config", str(config)]
    patch = VARIANTS[variant]
    if patch is not None:
        launch = f"{patch}; import sys; from consentgate.cli import main; sys.argv[0] = 'cg'"
        launch += "; main()"
        cmd = [sys.executable, "-c", launch, "serve", "--config", str(config)]
    return subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", "1"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", choices=list(FILES), action="append")
    ap.add_argument("--protocols", action="store_true", help="also measure protocol variants")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y nginx wrk")

    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-proxy-"))
    www = tmp / "www"
    www.mkdir()
    for key, (name, src) in FILES.items():
        if src is None:
            line = b"function f%d(a,b){return a*b+%d;}\n"
            data = b"".join(line % (i, i) for i in range(3000))[:71975]
        else:
            data = src.read_bytes()
        (www / name).write_bytes(data)
        FILES[key] = (name, src)

    procs: list[subprocess.Popen[bytes]] = []
    up, ngx, cg, cg2 = free_port(), free_port(), free_port(), free_port()
    try:
        conf = nginx_conf(
            tmp, "upstream", f"  gzip on;\n  server {{ listen 127.0.0.1:{up}; root {www}; }}"
        )
        procs.append(subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)]))
        conf = nginx_conf(
            tmp,
            "proxy",
            f"""
  upstream site {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{ngx};
    location / {{
      proxy_pass http://site;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Accept-Encoding "";
      sub_filter '<head>' '<head>{SNIPPET}';
      sub_filter_once on;
      gzip on;
    }}
  }}""",
        )
        nginx_proxy = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)])
        procs.append(nginx_proxy)
        cg_cached = start_consentgate(tmp, "cached", up, cg, cache_mb=32)
        cg_nocache = start_consentgate(tmp, "nocache", up, cg2, cache_mb=0)
        procs += [cg_cached, cg_nocache]
        variants: dict[str, tuple[int, int]] = {}
        if args.protocols:
            for variant in ("uvicorn-heads", "uvicorn-protocol"):
                vport = free_port()
                proc = start_consentgate(tmp, variant, up, vport, cache_mb=32, variant=variant)
                procs.append(proc)
                variants[f"consentgate, {variant}"] = (vport, proc.pid)
        for port in (up, ngx, cg, cg2, *(p for p, _ in variants.values())):
            wait_port(port)

        # correctness first: both inject, consentgate neutralizes GA
        for port in (cg, cg2):
            page = fetch(f"http://127.0.0.1:{port}/page.html")
            assert b"/_consent/banner.js" in page, "consentgate did not inject the banner"
        assert SNIPPET.encode() in fetch(f"http://127.0.0.1:{ngx}/page.html")

        servers = {
            "nginx+sub_filter": (ngx, nginx_proxy.pid),
            "consentgate": (cg, cg_cached.pid),
            "consentgate, rewrite cache off": (cg2, cg_nocache.pid),
            **variants,
        }
        rows = []
        for key in args.only or list(FILES):
            name = FILES[key][0]
            results = {}
            for label, (port, pid) in servers.items():
                url = f"http://127.0.0.1:{port}/{name}"
                headers = HEADERS.get(key, ())
                wrk(url, 1, args.connections, headers)  # warm-up
                sampler = RssSampler(pid)
                sampler.start()
                cpu = tree_cpu_seconds(pid)
                results[label] = wrk(url, args.duration, args.connections, headers)
                cpu = tree_cpu_seconds(pid) - cpu
                results[label]["rss_mb"] = sampler.stop() / 1024
                results[label]["cpu_us"] = cpu / results[label]["requests"] * 1e6
                results[label]["cores"] = cpu / args.duration
            rows.append((key, name, results))
        load = os.getloadavg()
        print(
            f"\n{os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f} at the end; "
            f"wrk -t1 -c{args.connections} -d{args.duration}s\n"
        )
        print(
            "| target | server | req/s | p50 ms | p99 ms | CPU µs/req | cores used "
            "| peak RSS MB | errors |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for key, name, results in rows:
            for label, r in results.items():
                err = int(r["non2xx"]) + int(r["sockerr"])
                print(
                    f"| {key} ({name}) | {label} | {r['rps']:,.0f} | {r['p50']:.2f} | "
                    f"{r['p99']:.2f} | {r['cpu_us']:.0f} | {r['cores']:.2f} | "
                    f"{r['rss_mb']:.0f} | {err} |"
                )
            base = results["nginx+sub_filter"]
            for label in list(servers)[1:]:
                ratio = results[label]["rps"] / base["rps"]
                p99 = results[label]["p99"] / base["p99"]
                cpu = base["cpu_us"] / results[label]["cpu_us"]
                print(
                    f"| {key} | *{label} / nginx* | *{ratio:.2f}x* | | *{p99:.1f}x* "
                    f"| *{cpu:.2f}x (nginx/cg)* | | | |"
                )
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
