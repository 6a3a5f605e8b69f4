"""What telemetry costs (issue 16): import time of `function_app`, and posting throughput and CPU per
payment on the `$batch` and single-request paths, with telemetry off against on; plus the cost of one
outcome log line at INFO.

"On" is the real thing: `payments.telemetry.configure` wires the Azure Monitor distro with the real
ManagedIdentityCredential (tokens from the sandbox's identity endpoint), and its exporters send to a
loopback ingestion endpoint run here (`/v2.1/track`, HTTPS with a throw-away self-signed certificate,
because azure-core refuses to send a bearer token over plain HTTP), which counts what it receives.
Statsbeat, the OneSettings control plane, the Azure VM resource detector (the metadata service) and
live metrics are switched off, and every process of the benchmark runs with a socket guard that refuses
(and records) any connection or name lookup that is not loopback.

OpenTelemetry's global providers can be set once per process, so each measured run is its own worker
process (`--worker`), printing one JSON line; off and on alternate, each run against a fresh sandbox
(so that Business Central's rate window, 6,000 requests per 5 minutes, never carries from one run to the
next) with the ledger in Azurite (`--ledger table`, as production) and the sandbox pinned apart.

Run: `.venv/bin/python -m bench.telemetry` (`--payments`, `--latency`, `--journals`, `--rounds`).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import ipaddress
import json
import logging
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IKEY = "00000000-0000-0000-0000-000000000000"
GUARD_LOG = "BENCH_TELEMETRY_GUARD_LOG"  # where every process's guard appends what it refused
# What keeps the distro and the exporter from reaching anything but loopback, beyond the relay's own
# options (live metrics off, automatic instrumentations off): see azure/monitor/opentelemetry/_utils/
# configurations.py and exporter/_configuration/_state.py, exporter/statsbeat/_state.py.
QUIET = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat goes to Microsoft's own component
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",  # OneSettings: polls a Microsoft host
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",  # not azure_vm (169.254.169.254) nor app service
    "OTEL_METRIC_EXPORT_INTERVAL": "5000",  # the distro's default is 60 s: export during the run too
}
# Settings a run must not inherit from the caller's shell.
SCRUB = (
    "APPLICATIONINSIGHTS_",
    "PYTHON_APPLICATIONINSIGHTS_",
    "OTEL_",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


# --- the socket guard -------------------------------------------------------------------------------


def _loopback(host: Any) -> bool:
    if host in (None, "", "localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def guard_sockets() -> None:
    """Refuse any connect, sendto or name lookup that is not loopback in this process, and append each
    refusal to the file named by BENCH_TELEMETRY_GUARD_LOG (read by the benchmark at the end), so a
    refusal swallowed by an exporter's thread still shows."""
    path = os.environ.get(GUARD_LOG)

    def refuse(what: str, target: Any) -> OSError:
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {what} {target!r}\n")
        return OSError(f"bench.telemetry socket guard: {what} {target!r} is not loopback")

    def check_address(sock: socket.socket, address: Any, what: str) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise refuse(what, address)

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        check_address(self, address, "connect")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address(self, address, "connect")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        check_address(self, args[-1], "sendto")
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            raise refuse("getaddrinfo", host)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo


# --- the loopback ingestion endpoint ----------------------------------------------------------------


class Ingestion:
    """Application Insights' track endpoint on 127.0.0.1: accepts every envelope and counts them by
    kind (requests and dependencies are spans, messages are log lines), checking each POST carries a
    bearer token."""

    def __init__(self, certfile: str, keyfile: str) -> None:
        self.lock = threading.Lock()
        self.items: Counter[str] = Counter()
        self.posts = 0
        self.unauthenticated = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "gzip" in (self.headers.get("Content-Encoding") or ""):
                    body = gzip.decompress(body)
                envelopes = owner.parse(body)
                owner.count(envelopes, self.headers.get("Authorization") or "")
                n = len(envelopes)
                answer = json.dumps({"itemsReceived": n, "itemsAccepted": n, "errors": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint=https://127.0.0.1:{self.server.server_port}/"

    @staticmethod
    def parse(body: bytes) -> list[dict]:
        text = body.decode()
        try:
            parsed = json.loads(text)
            return parsed if isinstance(parsed, list) else [parsed]
        except json.JSONDecodeError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    def count(self, envelopes: list[dict], authorization: str) -> None:
        with self.lock:
            self.posts += 1
            self.unauthenticated += not authorization.startswith("Bearer ")
            for envelope in envelopes:
                self.items[self.kind(envelope)] += 1

    @staticmethod
    def kind(envelope: dict) -> str:
        data = envelope.get("data") or {}
        base = data.get("baseType") or envelope.get("name", "?")
        props = (data.get("baseData") or {}).get("properties") or {}
        if base == "MessageData":
            if props.get("entry_point") == "bench":
                return "log: outcome lines (log-line test)"
            return "log: outcome lines" if "outcome" in props else "log: other lines"
        if base == "MetricData":
            metrics = (data.get("baseData") or {}).get("metrics") or [{}]
            name = str(metrics[0].get("name", "?"))
            ours = name.split(".")[0] in ("payments", "target", "queue", "bank")
            return "metric: the relay's" if ours else "metric: other (performance counters...)"
        return {
            "RequestData": "span: request (a SERVER span)",
            "RemoteDependencyData": "span: dependency (target, ledger, INTERNAL invocation)",
            "ExceptionData": "exception",
        }.get(base, f"other: {base}")

    def snapshot(self) -> tuple[Counter[str], int, int]:
        with self.lock:
            return Counter(self.items), self.posts, self.unauthenticated

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(directory: str) -> tuple[str, str]:
    """A throw-away certificate for 127.0.0.1 (the exporter sends its bearer token over HTTPS only)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    Path(certfile).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(keyfile).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certfile, keyfile


# --- the worker: one measured run in its own process ------------------------------------------------


def flush_all() -> None:
    """Make every exporter send what it holds now (metrics are otherwise read every interval)."""
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush:
            flush()


def switch_on(connection_string: str, storage_directory: str) -> bool:
    """Telemetry on as in Azure: the settings switch it on, `configure` wires the distro with the real
    ManagedIdentityCredential (here against the sandbox's identity endpoint)."""
    from payments.credentials import make_credential
    from payments.settings import load_settings
    from payments.telemetry import configure

    os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection_string
    os.environ["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] = "true"
    return configure(
        load_settings(),
        connection_string=connection_string,
        credential=make_credential("managed"),
        storage_directory=storage_directory,  # this run's own offline store: none left by another run
    )


def post_run(args: argparse.Namespace) -> dict[str, Any]:
    """As `bench.throughput.relay_run`, with each journal's share posted 100 payments per invocation
    span (`post_work` handles one queue message so; the span continues a host's sampled traceparent, as
    the Functions host passes one), timing wall and CPU (all threads of the process,
    the exporters' included) for the posting and for the final flush."""
    from bench.throughput import Answers, journal_ids, records
    from payments import telemetry
    from payments.credentials import target_credential
    from payments.ledger import Ledger, MemoryLedgerStore, TableLedgerStore
    from payments.model import check
    from payments.outbound import TargetClient
    from payments.posting import Pipeline
    from payments.settings import Settings
    from sandbox import SANDBOX_COMPANY_ID as C

    settings = Settings(
        target="businesscentral",
        api_base_url=args.url + "/v2.0/sandbox-tenant/sandbox/api/v2.0",
        batch_size=args.batch,
        read_timeout_seconds=600,
    )
    trips = [0]
    if args.storage:
        from azure.data.tables import TableClient

        def count(_request: Any) -> None:
            trips[0] += 1

        table = TableClient.from_connection_string(
            args.storage, f"benchtel{args.tag}", raw_request_hook=count
        )
        table.create_table()
        trips[0] = 0
        ledger = Ledger(TableLedgerStore(table))
    else:
        ledger = Ledger(MemoryLedgerStore())
    client = TargetClient(settings, target_credential(settings))
    pipeline = Pipeline(client, ledger)
    answers = Answers()
    logging.getLogger("payments.target").addHandler(answers)
    journals = journal_ids(args.journals)
    payments = [check(item).payment for item in records(args.payments, args.tag.upper())]
    shares = [payments[k :: len(journals)] for k in range(len(journals))]
    outcomes: list = []

    def post(journal: str, share: list) -> None:
        telemetry.ENTRY_POINT.set("queue")
        for start in range(0, len(share), 100):
            host = SimpleNamespace(trace_parent=f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01")
            with telemetry.invocation("post_work", host):
                outcomes.extend(pipeline.post_all(C, journal, share[start : start + 100]))

    threads = [threading.Thread(target=post, args=pair) for pair in zip(journals, shares, strict=True)]
    wall, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posted_wall, posted_cpu = time.perf_counter(), time.process_time()
    flush_all()
    flushed_wall, flushed_cpu = time.perf_counter(), time.process_time()
    logging.getLogger("payments.target").removeHandler(answers)
    client.close()
    return {
        "seconds": posted_wall - wall,
        "cpu": posted_cpu - cpu,
        "flush_seconds": flushed_wall - posted_wall,
        "flush_cpu": flushed_cpu - posted_cpu,
        "kinds": dict(Counter(o.kind for o in outcomes)),
        "answers": dict(answers.by_status),
        "trips": trips[0],
    }


def outcome_line_cost(calls: int) -> dict[str, float]:
    """CPU seconds per `payment_outcome` call with `payments.outcome` at WARNING (the metric only) and at
    INFO (the metric and the log line), 500 calls at a time each followed by a flush (so the export of
    what they produced is counted, and the log processor's queue never overflows and drops)."""
    from payments import telemetry
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_JOURNAL_ID as J

    outcome = logging.getLogger("payments.outcome")
    entered = telemetry.ENTRY_POINT.set("bench")
    best: dict[str, float] = {}
    try:
        for level in ("WARNING", "INFO", "WARNING", "INFO"):
            outcome.setLevel(level)
            started = time.process_time()
            for chunk in range(calls // 500):
                for i in range(500):
                    telemetry.payment_outcome(
                        "created",
                        target="businesscentral",
                        key=f"{chunk:04d}{i:04d}aa5f3c2e9d1b",
                        client_request_id=f"5b0e6f0e-0000-4000-8000-{chunk:04d}{i:08d}",
                        company=C,
                        journal=J,
                        natural={"documentNumber": f"L-{i:06d}", "externalDocumentNumber": f"BANK-L-{i:06d}"},
                    )
                flush_all()
            per_call = (time.process_time() - started) / (calls // 500 * 500)
            best[level] = min(best.get(level, float("inf")), per_call)
    finally:
        outcome.setLevel(logging.NOTSET)
        telemetry.ENTRY_POINT.reset(entered)
    return best


def worker(args: argparse.Namespace) -> None:
    """One run in a fresh process, telemetry off or on; prints one JSON line."""
    guard_sockets()
    os.environ["IDENTITY_ENDPOINT"] = args.url + "/msi/token"
    os.environ["IDENTITY_HEADER"] = args.identity_header
    # As function_app does at worker start (telemetry, then freezing what is loaded), with the relay's
    # loggers at INFO as the Functions worker has them, so that every outcome line is written.
    import azure.identity  # noqa: F401

    import payments.posting  # noqa: F401
    from payments import runtime

    logging.getLogger("payments").setLevel(logging.INFO)
    on = False
    with tempfile.TemporaryDirectory() as store:
        if args.worker == "on":
            on = switch_on(args.connection_string, store)
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider

            on = on and isinstance(trace.get_tracer_provider(), TracerProvider)
        runtime.freeze_startup_objects()
        figures = post_run(args)
        figures["line"] = outcome_line_cost(args.log_calls)
        figures["on"] = on
        print(json.dumps(figures), flush=True)
        if on:  # what the exporters still hold goes now, while the offline store exists
            from opentelemetry import _logs, metrics, trace

            for provider in (
                trace.get_tracer_provider(),
                metrics.get_meter_provider(),
                _logs.get_logger_provider(),
            ):
                shutdown = getattr(provider, "shutdown", None)
                if shutdown:
                    shutdown()


# --- the parent: import times, alternating runs, tables -------------------------------------------


def child_env(on: bool, connection_string: str, certfile: str, guard_log: str) -> dict[str, str]:
    """The environment of an import probe or a worker: telemetry switched on by the standard settings
    or not, the switches that keep everything on loopback either way, the loopback's certificate trusted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    env.update(QUIET)
    env[GUARD_LOG] = guard_log
    env["REQUESTS_CA_BUNDLE"] = certfile  # requests (under azure-core) trusts the loopback's certificate
    if on:
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection_string
        env["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] = "true"
    return env


def import_times(
    repeats: int, env_for: Callable[[bool], dict[str, str]], identity: tuple[str, str]
) -> dict[bool, list[float]]:
    """Seconds to import function_app in fresh processes, off and on alternately (as
    `bench.throughput.import_times` measures it, with the socket guard installed first)."""
    probe = (
        "import bench.telemetry as b; b.guard_sockets(); import time; t = time.perf_counter(); "
        "import function_app; d = time.perf_counter() - t; from payments.telemetry import setup; "
        "print(d, setup._configured)"
    )
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for on in (False, True):
            env = env_for(on)
            env["IDENTITY_ENDPOINT"], env["IDENTITY_HEADER"] = identity
            out = subprocess.run(
                [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
            )
            seconds, configured = out.stdout.strip().splitlines()[-1].split()
            if (configured == "True") != on:
                raise SystemExit(f"import probe: telemetry {'not ' if on else ''}configured:\n{out.stderr}")
            times[on].append(float(seconds))
    return times


@contextlib.contextmanager
def sandbox(latency: float, journals: int, pin: bool) -> Iterator[str]:
    """A fresh sandbox as bench.throughput starts it (Business Central's limits), pinned to the last CPU."""
    from bench.throughput import start_sandbox

    proc, url = start_sandbox(latency, journals)
    try:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if pin and len(cpus) >= 2:
            os.sched_setaffinity(proc.pid, {cpus[-1]})
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def run_worker(
    mode: str, batch: int, tag: str, args: argparse.Namespace, url: str, env: dict[str, str]
) -> dict:
    from sandbox import SANDBOX_TOKEN_HEADER

    command = [
        sys.executable, "-m", "bench.telemetry", "--worker", mode, "--batch", str(batch), "--tag", tag,
        "--url", url, "--identity-header", SANDBOX_TOKEN_HEADER, "--payments", str(args.payments),
        "--journals", str(args.journals), "--log-calls", str(args.log_calls),
        "--connection-string", env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", args.connection_string),
    ]  # fmt: skip
    if args.storage:
        command += ["--storage", args.storage]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not args.no_pin and len(cpus) >= 2:
        os.sched_setaffinity(proc.pid, set(cpus[:-1]))  # the relay apart from the sandbox and the loopback
    out, err = proc.communicate(timeout=900)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"worker {mode} batch {batch} failed ({proc.returncode}):\n{err[-4000:]}")
    return json.loads(lines[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per operation at the sandbox")
    parser.add_argument("--journals", type=int, default=3, help="journals the payments are split over")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs per path")
    parser.add_argument("--imports", type=int, default=5, help="fresh processes per import-time figure")
    parser.add_argument("--log-calls", type=int, default=5000, help="payment_outcome calls per level")
    parser.add_argument("--ledger", choices=["table", "memory"], default="table")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--sampler",
        help="OTEL_TRACES_SAMPLER for the 'on' runs (default: the distro's, rate-limited to 5 traces/s)",
    )
    parser.add_argument("--worker", choices=["off", "on"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--identity-header", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--connection-string", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    guard_log = tempfile.NamedTemporaryFile(prefix="bench-telemetry-guard-", suffix=".log", delete=False).name
    os.environ[GUARD_LOG] = guard_log
    guard_sockets()
    stack = contextlib.ExitStack()
    with stack:
        certdir = stack.enter_context(tempfile.TemporaryDirectory())
        certfile, keyfile = self_signed(certdir)
        ingestion = Ingestion(certfile, keyfile)
        stack.callback(ingestion.close)
        args.connection_string = ingestion.connection_string
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        pinned = not args.no_pin and len(cpus) >= 2
        if pinned:  # the loopback endpoint (this process) beside the sandbox, apart from the relay
            os.sched_setaffinity(0, {cpus[-1]})
        args.storage = None
        if args.ledger == "table":
            from devtools.azurite import running_azurite

            args.storage = stack.enter_context(running_azurite()).connection_string

        def env_for(on: bool) -> dict[str, str]:
            env = child_env(on, ingestion.connection_string, certfile, guard_log)
            if args.sampler:
                env["OTEL_TRACES_SAMPLER"] = args.sampler
            return env

        from sandbox import SANDBOX_TOKEN_HEADER

        print("import times ...", file=sys.stderr)
        with sandbox(args.latency, args.journals, pinned) as url:
            imports = import_times(args.imports, env_for, (url + "/msi/token", SANDBOX_TOKEN_HEADER))
        import_items, _, _ = ingestion.snapshot()

        runs: dict[tuple[int, str], list[dict]] = {}
        received: dict[tuple[int, str], Counter[str]] = {}
        posts = unauthenticated = 0
        for r in range(args.rounds):
            for batch in (100, 0):
                for mode in ("off", "on"):
                    before, posts_before, unauth_before = ingestion.snapshot()
                    with sandbox(args.latency, args.journals, pinned) as url:
                        figures = run_worker(
                            mode, batch, f"{mode}{r}b{batch}", args, url, env_for(mode == "on")
                        )
                    after, posts_after, unauth_after = ingestion.snapshot()
                    if (mode == "on") != figures["on"]:
                        raise SystemExit(f"worker {mode}: telemetry {'not ' if mode == 'on' else ''}on")
                    figures["received"] = after - before
                    posts += posts_after - posts_before
                    unauthenticated += unauth_after - unauth_before
                    runs.setdefault((batch, mode), []).append(figures)
                    received.setdefault((batch, mode), Counter()).update(after - before)
                    print(
                        f"  round {r + 1}, batch {batch}, telemetry {mode}: {figures['seconds']:.1f} s, "
                        f"CPU {figures['cpu']:.2f} s, {figures['kinds']}",
                        file=sys.stderr,
                    )
    refused = Path(guard_log).read_text(encoding="utf-8").splitlines()
    Path(guard_log).unlink()

    n = args.payments
    print(
        f"\n### Telemetry cost: {n} payments per run into {args.journals} journal(s), {args.latency * 1000:.0f} ms "
        f"per operation at the sandbox (Business Central's limits, a fresh sandbox per run), ledger "
        f"{'in Azure Table storage (Azurite)' if args.storage else 'in memory'}, "
        f"{'relay pinned apart from the sandbox' if pinned else 'not pinned'}; trace sampling "
        f"{args.sampler or 'the distro default (rate-limited, 5 traces/s)'}; socket guard on in every "
        f"process of the benchmark: {len(refused)} non-loopback connection(s) or lookup(s) refused\n"
    )
    off_ms = [t * 1000 for t in imports[False]]
    on_ms = [t * 1000 for t in imports[True]]
    print(f"**Import time of function_app** (median of {args.imports} fresh processes each)\n")
    print("| telemetry | median ms | min-max ms |")
    print("|---|---:|---:|")
    print(f"| off | {statistics.median(off_ms):,.0f} | {min(off_ms):,.0f}-{max(off_ms):,.0f} |")
    print(
        f"| on (distro imported and configured) | {statistics.median(on_ms):,.0f} | {min(on_ms):,.0f}-{max(on_ms):,.0f} |"
    )
    print(f"| **cost** | **{statistics.median(on_ms) - statistics.median(off_ms):+,.0f}** | |")

    print(f"\n**Posting: payments/s and CPU per payment** ({args.rounds} rounds, off and on alternating)\n")
    print(
        "| path | telemetry | payments/s median (min-max) | wall overhead | CPU µs/payment median (min-max) | "
        "CPU overhead µs/payment | CPU overhead | flush CPU µs/payment | outcomes |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for batch in (100, 0):
        path = f"`$batch` of {batch}" if batch else "single requests"
        base_rate = statistics.median([n / f["seconds"] for f in runs[(batch, "off")]])
        base_cpu = statistics.median([f["cpu"] / n * 1e6 for f in runs[(batch, "off")]])
        for mode in ("off", "on"):
            rows = runs[(batch, mode)]
            rates = [n / f["seconds"] for f in rows]
            cpu = [f["cpu"] / n * 1e6 for f in rows]
            flush = statistics.median([f["flush_cpu"] / n * 1e6 for f in rows])
            kinds: Counter[str] = Counter()
            for f in rows:
                kinds.update(f["kinds"])
            answers: Counter[str] = Counter()
            for f in rows:
                answers.update(f["answers"])
            note = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            if answers:
                note += "; non-2xx " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
            if mode == "off":
                wall_over = cpu_over = cpu_pct = "-"
            else:
                wall_over = f"{(base_rate - statistics.median(rates)) / base_rate:+.1%}"
                cpu_over = f"{statistics.median(cpu) - base_cpu:+,.0f}"
                cpu_pct = f"{(statistics.median(cpu) - base_cpu) / base_cpu:+.1%}"
            print(
                f"| {path} | {mode} | {spread(rates)} | {wall_over} | {spread(cpu)} | {cpu_over} | {cpu_pct} | "
                f"{flush:,.0f} | {note} |"
            )
    print(
        "\n(payments/s: posting, first request to last answer; wall overhead = the drop in median payments/s. "
        "CPU: `time.process_time()` of the relay's process over the posting, every thread included (the "
        "exporters' batch threads too); flush CPU: the final `force_flush` of traces, metrics and logs, "
        "what the run left to export. Each 100 payments of a journal are one `post_work` invocation span.)"
    )

    print("\n**What the loopback ingestion endpoint received** (all runs of each kind added up)\n")
    kinds_seen = sorted({k for c in received.values() for k in c} | set(import_items))
    header = [f"`$batch` {b} {m}" if b else f"single {m}" for b in (100, 0) for m in ("off", "on")]
    print("| item | " + " | ".join(header) + " | import probes |")
    print("|---|" + "---:|" * (len(header) + 1))
    for kind in kinds_seen:
        cells = [str(received[(b, m)][kind]) for b in (100, 0) for m in ("off", "on")]
        print(f"| {kind} | " + " | ".join(cells) + f" | {import_items[kind]} |")
    print(
        f"\n({posts} POSTs to /v2.1/track during the runs, {unauthenticated} without a bearer token; "
        f"{args.rounds} x {n} payments per path and mode, plus {args.log_calls * 2} outcome lines of the "
        "log-line test per worker at INFO.)"
    )

    print("\n**One outcome (`payments.telemetry.payment_outcome`): CPU µs per call** (median over workers)\n")
    print(
        "| telemetry | `payments.outcome` at WARNING (metric only) | at INFO (metric + log line) | the log line |"
    )
    print("|---|---:|---:|---:|")
    for mode in ("off", "on"):
        lines = [f["line"] for key, rows in runs.items() if key[1] == mode for f in rows]
        warn = statistics.median([line["WARNING"] * 1e6 for line in lines])
        info = statistics.median([line["INFO"] * 1e6 for line in lines])
        print(f"| {mode} | {warn:,.1f} | {info:,.1f} | {info - warn:,.1f} |")
    print(
        "\n(500 calls at a time, each 500 followed by a flush of every exporter, so exporting them is counted; "
        "'off': no handler on `payments`, the record is made and dropped.)"
    )
    if refused:
        print("\nrefused by the socket guard:\n" + "\n".join(refused[:20]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
