"""Run every benchmark path against one relay and write the Markdown report.

Called by scripts/bench, which builds everything first. Each (workload, path) runs `runs`
times, interleaved round-robin so drift on a noisy machine hits every path alike; the
table shows medians, and ratios are taken between medians of the same invocation.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (key, label, args, metric, unit, higher_is_better); "{n}" in a label is the count.
WORKLOADS_FULL = [
    ("small", "burst {n} x 100 B", ["burst", "10000", "100"], "objects_per_s", "obj/s", True),
    ("large", "burst {n} x 100 KB", ["burst", "1000", "102400"], "mb_per_s", "MB/s", True),
    ("paced", "paced {n} x 100 B @ 1 ms", ["paced", "1000", "100"], "p50_us", "us p50", False),
    ("datagram", "datagram {n} x 100 B @ 1 ms", ["datagram", "1000", "100"], "ratio",
     "delivered", True),
    ("publish", "publish call, 100 B, no subscriber", ["publish", "100000", "100"],
     "ns_per_call", "ns/call", False),
    ("stats", "stats() call, connected client", ["stats", "100000", "0"],
     "ns_per_call", "ns/call", False),
    ("joinfetch", "joining fetch of the last group ({n} x 1 KB): time to first object",
     ["joinfetch", "30", "1000"], "p50_us", "us p50", False),
]
# The publish and stats calls do not depend on how Python receives: measured once, on the
# batch row. stats() is an SDK call (no plain moq-transport equivalent); the Kotlin and Swift
# bench programs do not run it.
SKIP = {("publish", "py-listener"), ("publish", "py-pull"), ("publish", "py-packed")} | {
    ("stats", path) for path in ("baseline", "py-listener", "py-pull", "py-packed", "kotlin",
                                 "swift")} | {
    # `past_groups` is measured on the core: every face runs the same core code for it.
    ("joinfetch", path) for path in ("baseline", "c", "py-batch", "py-listener", "py-pull",
                                     "py-packed", "kotlin", "swift")}
# A burst lasts well under a second (10,000 x 100 B: under 100 ms), so single runs spread by
# +-40% on a busy 2-core machine: bursts get 2 * runs + 1 runs (cheap), the rest `runs`.
BURSTS = {"small", "large"}
SMOKE_COUNTS = {"small": "200", "large": "20", "paced": "20", "datagram": "20", "publish": "1000",
                "stats": "1000", "joinfetch": "5"}


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        mem_gib = int(mem.split()[1]) / 1024 / 1024
    except (OSError, StopIteration):
        mem_gib = 0
    def version(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"
    return {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "memory": f"{mem_gib:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "rustc": version(["rustc", "--version"]),
        "python": platform.python_version(),
        "java": version(["java", "-version"]),
    }


class Relay:
    """moq-test-relay, of the kind MOQ_TEST_RELAY names (`patched` or `upstream`)."""

    def __init__(self, binary, kind="patched"):
        self.env = dict(os.environ)
        # `cluster`: three unpatched relays (moq-relay-ietf 0.8 as published, moq-api, Redis);
        # the publisher on one, the subscriber on another (MOQ_RELAY_SUBSCRIBE_URL).
        command = [binary, "--cluster"] if kind == "cluster" else [binary]
        if kind != "cluster":
            self.env["MOQ_TEST_RELAY"] = kind
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=self.env)
        for line in self.proc.stdout:
            line = line.strip()
            if line == "READY":
                break
            if line.startswith("MOQ_RELAY_") and "=" in line:
                key, value = line.split("=", 1)
                self.env[key] = value
        else:
            raise SystemExit("relay did not start")

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_one(command, env, timeout):
    started = time.monotonic()
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            if out.returncode == 0:
                return json.loads(line[len("RESULT "):]), None
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"exit {out.returncode} after {time.monotonic() - started:.1f} s: {tail}"


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "delivered":
        return f"{value * 100:.1f}%"
    if unit in ("obj/s", "ns/call"):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def median_of(results, key):
    values = [r[key] for r in results if r is not None and r.get(key) is not None]
    return statistics.median(values) if values else None


def prepare(args):
    """The workloads (smoke counts in smoke mode, labels filled in) and the runs of each."""
    workloads = [list(w) for w in WORKLOADS_FULL]
    for w in workloads:
        if args.smoke:
            w[2] = [w[2][0], SMOKE_COUNTS[w[0]], w[2][2]]
        w[1] = w[1].format(n=f"{int(w[2][1]):,}")
    runs = 1 if args.smoke else args.runs
    return workloads, runs, 1 if args.smoke else 2 * args.runs + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bench", required=True, help="the Rust bench binary")
    parser.add_argument("--relay", required=True)
    parser.add_argument("--c-bench", required=True)
    parser.add_argument("--python", required=True, help="python with moqkit installed")
    parser.add_argument("--libdir", required=True, help="directory of libmoq_ffi.so (Kotlin)")
    parser.add_argument("--no-kotlin", action="store_true")
    parser.add_argument("--no-swift", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--soak-seconds", type=int, default=60)
    parser.add_argument("--relays-only", action="store_true",
                        help="only the SDK core through both relays; replaces that section "
                             "of --out")
    args = parser.parse_args()
    if args.relays_only:
        return relays_only(args)

    paths = [
        ("baseline", "plain moq-transport", [args.bench, "baseline"]),
        ("core", "SDK core (Rust)", [args.bench, "core"]),
        ("c", "C ABI", [args.c_bench]),
        ("py-listener", "Python listener", [args.python, f"{ROOT}/bench/python/bench.py", "listener"]),
        ("py-pull", "Python pull", [args.python, f"{ROOT}/bench/python/bench.py", "pull"]),
        ("py-batch", "Python batch", [args.python, f"{ROOT}/bench/python/bench.py", "batch"]),
        ("py-packed", "Python packed", [args.python, f"{ROOT}/bench/python/bench.py", "packed"]),
    ]
    if not args.no_kotlin:
        paths.append(("kotlin", "Kotlin (batch Flow)", [f"{ROOT}/bench/kotlin.sh", args.libdir]))
    if not args.no_swift:
        paths.append(("swift", "Swift (batch pull)", [f"{ROOT}/bench/swift.sh", args.libdir]))
    workloads, runs, burst_runs = prepare(args)

    relay = Relay(args.relay)
    results = {}   # (workload, path) -> list of result dicts (None = failed)
    failures = []
    try:
        for run in range(burst_runs):
            for key, label, wargs, metric, unit, _ in workloads:
                if run >= (burst_runs if key in BURSTS else runs):
                    continue
                for pkey, plabel, command in paths:
                    if (key, pkey) in SKIP:
                        continue
                    result, error = run_one(command + wargs, relay.env, 300)
                    results.setdefault((key, pkey), []).append(result)
                    if error:
                        failures.append(f"{plabel} / {label} (run {run + 1}): {error}")
                    shown = fmt(result.get(metric) if result else None, unit)
                    print(f"run {run + 1} {label:38} {plabel:22} {shown}", flush=True)
        soak_seconds = 2 if args.smoke else args.soak_seconds
        memory, error = run_one([args.bench, "core", "memory", "5" if args.smoke else "100", "100"],
                                relay.env, 300)
        if error:
            failures.append(f"memory: {error}")
        soak, error = run_one([args.bench, "core", "soak", str(soak_seconds), "1024"], relay.env,
                              soak_seconds + 120)
        if error:
            failures.append(f"soak: {error}")
    finally:
        relay.stop()

    section, relay_failures = compare_relays(args, workloads, runs, burst_runs)
    failures += relay_failures
    report = render(args, paths, workloads, results, memory, soak, failures, runs)
    report = report.replace("\n## Resources (SDK core)", section + "\n## Resources (SDK core)", 1)
    with open(args.out, "w") as f:
        f.write(report)
    print(f"\nwrote {args.out}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


RELAY_KINDS = [("patched", "patched relay"), ("upstream", "unpatched relay"),
               ("cluster", "two unpatched relays")]
RELAY_WORKLOADS = ("small", "large", "paced")
RELAYS_HEADING = "## Through the relays users run, and two of them (SDK core)"
OLD_RELAYS_HEADINGS = ["## Through both relays (SDK core)"]


def compare_relays(args, workloads, runs, burst_runs):
    """The SDK core's burst and paced workloads through moq-relay-ietf on our patched
    moq-transport and on the published one, interleaved in one invocation. Returns the
    Markdown section and any failures."""
    relays = {kind: Relay(args.relay, kind) for kind, _ in RELAY_KINDS}
    results, failures = {}, []
    chosen = [w for w in workloads if w[0] in RELAY_WORKLOADS]
    try:
        for run in range(burst_runs):
            for key, label, wargs, metric, unit, _ in chosen:
                if run >= (burst_runs if key in BURSTS else runs):
                    continue
                for kind, klabel in RELAY_KINDS:
                    result, error = run_one([args.bench, "core"] + wargs, relays[kind].env, 300)
                    results.setdefault((key, kind), []).append(result)
                    if error:
                        failures.append(f"core via {klabel} / {label} (run {run + 1}): {error}")
                    shown = fmt(result.get(metric) if result else None, unit)
                    print(f"run {run + 1} {label:38} {klabel:22} {shown}", flush=True)
    finally:
        for relay in relays.values():
            relay.stop()
    lines = [
        "",
        RELAYS_HEADING,
        "",
        "The SDK core's bursts and paced stream through moq-relay-ietf 0.8 on this workspace's "
        "patched moq-transport (`MOQ_TEST_RELAY=patched`, in-process in `moq-test-relay`), "
        "on the published moq-transport 0.17 (`MOQ_TEST_RELAY=upstream`, `moq-upstream-relay` "
        "in a child process: the stream behaviour relays users meet keep), and through two "
        "relays of a cluster (`moq-test-relay --cluster`: moq-relay-ietf 0.8's own binary as "
        "published, three relays coordinated through moq-api over Redis; the publisher on one, "
        "the subscriber on another, which dials the first), all running, runs "
        f"interleaved; medians of {runs} runs ({burst_runs} for the bursts), measured on "
        f"{datetime.date.today().isoformat()} by `scripts/bench"
        f"{' --relays-only' if args.relays_only else ''}`. Every burst checks that its "
        "objects arrived complete and in order.",
        "",
        "| workload | " + " | ".join(k[1] for k in RELAY_KINDS)
        + " | unpatched / patched | two relays / one (unpatched) |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, wargs, metric, unit, higher in chosen:
        rows = [(f"{label} ({unit})", metric, unit, higher)]
        if key == "paced":
            rows.append(("paced, p99 (us)", "p99_us", "us", False))
        for text, m, u, h in rows:
            values = [median_of(results.get((key, kind), []), m) for kind, _ in RELAY_KINDS]
            patched, upstream, cluster = values

            def ratio(a, b):
                if not (a and b):
                    return "n/a"
                return f"{(a / b if h else b / a):.2f}"

            cells = " | ".join(fmt(v, u) for v in values)
            lines.append(f"| {text} | {cells} | {ratio(upstream, patched)} | "
                         f"{ratio(cluster, upstream)} |")
    if failures:
        lines += ["", "Failed runs:", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n", failures


def relays_only(args):
    """Run `compare_relays` alone and put its section into --out in place of the old one."""
    workloads, runs, burst_runs = prepare(args)
    section, failures = compare_relays(args, workloads, runs, burst_runs)
    try:
        report = open(args.out).read()
    except OSError:
        report = "# Benchmarks\n"
    for heading in [RELAYS_HEADING] + OLD_RELAYS_HEADINGS:
        start = report.find("\n" + heading)
        if start >= 0:
            end = report.find("\n## ", start + 1 + len(heading))
            report = report[:start] + report[end if end >= 0 else len(report):]
    anchor = report.find("\n## Resources (SDK core)")
    if anchor < 0:
        anchor = len(report)
    report = report[:anchor] + section + report[anchor:]
    with open(args.out, "w") as f:
        f.write(report)
    print(f"\nwrote the relay section of {args.out}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def render(args, paths, workloads, results, memory, soak, failures, runs):
    m = machine()
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `scripts/bench{' --smoke' if args.smoke else ''}` on "
        f"{datetime.date.today().isoformat()}; every path through the same in-process-built "
        "`moq-test-relay` on loopback, raw QUIC (`moqt://`), "
        f"{'debug build, tiny counts: a smoke run, not figures' if args.smoke else 'release build'}.",
        "",
        f"Machine: {m['cpu']}, {m['memory']} RAM, {m['os']}; {m['rustc']}; Python {m['python']}; "
        f"{m['java']}.",
        "",
        f"Each cell is the median of {runs} runs ({2 * runs + 1 if not args.smoke else 1} for the bursts, "
        "which last well under a second) (each run a fresh process), interleaved "
        "round-robin across paths. Ratios divide medians of this same invocation: each path "
        "by the SDK core, the core by the plain moq-transport client. For latency and ns/call "
        "(lower is better) the ratio is inverted (core / path) so that above 1 is always better.",
        "",
    ]
    header = "| workload | " + " | ".join(p[1] for p in paths) + " |"
    lines += [header, "|---" * (len(paths) + 1) + "|"]
    medians = {}
    for key, label, wargs, metric, unit, higher in workloads:
        row = []
        for pkey, _, _ in paths:
            value = median_of(results.get((key, pkey), []), metric)
            medians[(key, pkey)] = value
            row.append(fmt(value, unit))
        lines.append(f"| {label} ({unit}) | " + " | ".join(row) + " |")
        if key == "paced":
            row99 = []
            for pkey, _, _ in paths:
                value = median_of(results.get((key, pkey), []), "p99_us")
                medians[("paced99", pkey)] = value
                row99.append(fmt(value, "us"))
            lines.append("| paced, p99 (us) | " + " | ".join(row99) + " |")
        if key == "datagram":
            rowlat = []
            for pkey, _, _ in paths:
                rowlat.append(fmt(median_of(results.get((key, pkey), []), "p50_us"), "us"))
            lines.append("| datagram, p50 of delivered (us) | " + " | ".join(rowlat) + " |")
        if key == "large":
            rowcpu = []
            for pkey, _, _ in paths:
                per = [r["cpu_s"] * 100e6 / (int(wargs[1]) * int(wargs[2]))
                       for r in results.get((key, pkey), []) if r]
                rowcpu.append(fmt(statistics.median(per) if per else None, "s"))
            lines.append("| CPU-seconds per 100 MB delivered (both ends, one process) | "
                         + " | ".join(rowcpu) + " |")

    def ratio(a, b, higher):
        if a is None or b is None or a == 0 or b == 0:
            return None
        return a / b if higher else b / a

    lines += ["", "## Ratios", "", "| workload | " + " | ".join(p[1] for p in paths) + " |",
              "|---" * (len(paths) + 1) + "|"]
    for key, label, wargs, metric, unit, higher in workloads:
        row = []
        for pkey, _, _ in paths:
            if pkey == "baseline":
                r = ratio(medians[(key, "core")], medians[(key, "baseline")], higher)
                row.append("core/baseline " + (f"{r:.2f}" if r else "n/a"))
            elif pkey == "core":
                row.append("1.00")
            else:
                r = ratio(medians[(key, pkey)], medians[(key, "core")], higher)
                row.append(f"{r:.2f}" if r else "n/a")
        lines.append(f"| {label} | " + " | ".join(row) + " |")

    lines += ["", "## Resources (SDK core)", ""]
    if memory:
        lines.append(f"- Resident memory of a connected client: {memory['client_mb']:.2f} MB; "
                     f"per active subscription: {memory['per_subscription_kb']:.1f} KB "
                     f"({memory['subscriptions']} subscriptions, one object each).")
    if soak:
        lines.append(f"- Soak, {soak['seconds']} s of 1 KB objects every millisecond, a new group every second "
                     f"({soak['received']:,} delivered in order): RSS {soak['rss_warm_mb']:.2f} MB "
                     f"after {soak['warm_up_s']} s warm-up, {soak['rss_end_mb']:.2f} MB at the end (medians of the first and last 5 once-a-second samples): "
                     f"growth {soak['growth_mb']:+.2f} MB.")

    lines += ["", "## Targets", ""]
    def check(name, value, target, ok):
        shown = "n/a" if value is None else f"{value:.2f}"
        lines.append(f"- {'MET' if ok else 'MISSED'}: {name}: {shown} (target {target})")
    core_over_base = [ratio(medians[(k, "core")], medians[(k, "baseline")], h)
                      for k, _, _, _, _, h in workloads if k != "datagram"]
    worst = min([r for r in core_over_base if r is not None], default=None)
    check("SDK core / plain moq-transport, worst workload", worst, ">= 0.95",
          worst is not None and worst >= 0.95)
    for key in ("small", "large"):
        r = ratio(medians[(key, "c")], medians[(key, "core")], True)
        check(f"C ABI / core throughput ({key} burst)", r, ">= 0.95", r is not None and r >= 0.95)
    if medians[("paced", "c")] is not None and medians[("paced", "core")] is not None:
        added = medians[("paced", "c")] - medians[("paced", "core")]
        check("C ABI added p50 latency, us", added, "<= 20", added <= 20)
    # Both batch-pull forms are judged on the batch target: records (next_batch) and packed.
    for pkey, target in (("py-batch", 0.8), ("py-packed", 0.8), ("py-listener", 0.5),
                         ("kotlin", 0.5), ("swift", 0.5)):
        if ("small", pkey) in medians:
            r = ratio(medians[("small", pkey)], medians[("small", "core")], True)
            check(f"{pkey} / core objects/s (100 B)", r, f">= {target}",
                  r is not None and r >= target)
    if soak:
        check("memory growth over the soak, MB", soak["growth_mb"], "< 1", soak["growth_mb"] < 1)
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- {f}" for f in failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
