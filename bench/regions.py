"""Benchmark: what deciding a visitor's regime costs per request.

``consentgate.regions.decide_scope`` runs once for every proxied or middleware-served
page and every consent API call. This measures it in-process, single-threaded, on
an ASGI scope with browser-like headers, for three detection paths:

- a trusted CDN header (``CF-IPCountry`` + ``CF-Region-Code`` from 127.0.0.1);
- a MaxMind database (NETWORKS random /24 networks, written with tests/mmdb.py) for
  an untrusted peer;
- unknown (nothing configured).

Anchor, in the same run: a bare ``maxminddb`` ``Reader.get`` of the same addresses
(the least any GeoIP-based detection pays).

    python3 bench/regions.py --seconds 4 --networks 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import ipaddress
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import maxminddb  # noqa: E402

from consentgate.config import Site  # noqa: E402
from consentgate.regions import GeoIPDatabase, RegionDetector, decide_scope  # noqa: E402
from tests.mmdb import MMDBWriter  # noqa: E402

BROWSER_HEADERS = [
    (b"host", b"shop.example"),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
    ),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"cookie", b"PHPSESSID=abc; consentgate=eyJpIjoi.sig"),
    (b"referer", b"https://shop.example/"),
]


class Runtime:
    def __init__(self, detector: RegionDetector) -> None:
        self.settings = None
        self.region_detector = detector


def rate(fn: Any, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            fn()
        n += 1000
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--networks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(8)
    writer = MMDBWriter()
    addresses: list[str] = []
    codes = ["DE", "FR", "US", "GB", "BR", "JP", "KZ"]
    seen: set[int] = set()
    while len(addresses) < args.networks:
        net = rng.randrange(1 << 24) << 8
        if net in seen:
            continue
        seen.add(net)
        cidr = f"{ipaddress.IPv4Address(net)}/24"
        code = rng.choice(codes)
        record: dict[str, Any] = {"country": {"iso_code": code}}
        if code == "US":
            record["subdivisions"] = [{"iso_code": "CA"}]
        writer.insert(cidr, record)
        addresses.append(str(ipaddress.IPv4Address(net + 7)))
    site = Site(id="bench")
    with tempfile.TemporaryDirectory() as tmp:
        path = writer.write(Path(tmp) / "bench.mmdb")
        geoip = GeoIPDatabase(str(path))
        raw = maxminddb.open_database(str(path))
        header = RegionDetector(
            region_header="CF-IPCountry",
            subdivision_header="CF-Region-Code",
            trusted_proxies=["127.0.0.1"],
        )
        by_db = RegionDetector(trusted_proxies=["127.0.0.1"], geoip=geoip)
        nothing = RegionDetector(trusted_proxies=["127.0.0.1"])
        cdn = [*BROWSER_HEADERS, (b"cf-ipcountry", b"US"), (b"cf-region-code", b"CA")]
        peers = iter(addresses * 1000)

        def run(detector: RegionDetector, headers: list[tuple[bytes, bytes]], peer: Any) -> Any:
            runtime = Runtime(detector)

            def one() -> None:
                scope = {"client": (peer(), 1), "headers": headers, "state": {}}
                decide_scope(runtime, site, scope, None)

            return one

        rows = [
            ("trusted CDN header", run(header, cdn, lambda: "127.0.0.1")),
            ("MaxMind database", run(by_db, BROWSER_HEADERS, lambda: next(peers))),
            ("unknown region", run(nothing, BROWSER_HEADERS, lambda: "198.51.100.7")),
            ("anchor: maxminddb Reader.get", lambda: raw.get(next(peers))),
        ]
        machine = f"{platform.machine()} {platform.processor()}".strip()
        print(f"# {machine}, Python {platform.python_version()}, maxminddb {maxminddb.__version__}")
        print(f"# reader {type(raw).__module__}, {args.networks} networks, best of {args.rounds}")
        best = dict.fromkeys((name for name, _ in rows), 0.0)
        for _ in range(args.rounds):  # interleaved: a busy neighbour hurts every row alike
            for name, fn in rows:
                best[name] = max(best[name], rate(fn, args.seconds / args.rounds))
        print("| path | decisions/s | µs each |")
        print("|---|---:|---:|")
        for name, per_s in best.items():
            print(f"| {name} | {per_s:,.0f} | {1e6 / per_s:.1f} |")
        raw.close()
        geoip.close()


if __name__ == "__main__":
    main()
