"""Relay benchmark: our MTA against Postfix, relaying to many slow destinations, in one run.

Both MTAs accept mail on loopback and relay every recipient by SMTP to one of D destination
domains d1.bench.test .. dD.bench.test (50 by default). A dnsmasq on 127.0.5.53:53 gives each
domain an MX host mxN.bench.test with the address 127.0.1.N (127.0.2.x past 254), and on each
of those addresses a Postfix smtp-sink listens on port 25, delaying some replies like a
receiver across the Internet would (see SINK_DELAYS), and dumping every message it accepts
into a file. Postfix's smtp client asks the libc resolver (port 53 only), so bench/relay/
postfix.sh starts Postfix in a private mount namespace whose /etc/resolv.conf names 127.0.5.53;
ours is pointed at the same server with smtp_dns_resolver_address/_port. With --routing
transport, both MTAs instead get the same transport_maps (dN.bench.test -> smtp:[127.0.1.N]:25)
and do no DNS.

A built-in SMTP client (the `load` subcommand, one process, C sessions like smtp-source -s C -d,
no pipelining) submits N messages; message i goes to domain i mod D. Each run is measured as:

  submit msg/s     N / wall time of the submission client
  deliveries/s     N*R / (time from the start of submission until the MTA's log shows N*R
                   `status=sent` lines for this run's recipients)
  received         recipients of this run found in the sinks' dump files (each counted once;
                   duplicates and mail at the wrong sink are reported apart)
  lost             N*R - received
  cpu s/1k         CPU seconds of the MTA's whole process tree per 1000 deliveries

Runs are interleaved: each repetition walks the session counts and, for each, both MTAs, in
the opposite order on every other repetition. Both MTAs stay up for the whole benchmark.

Usage:
  relaybench.py run [-n 20000 | --quick] [-c 10,50] [--reps 2] [--domains 50]
                    [--latency internet|slow|none|SPEC] [--routing dns|transport]
                    [--json FILE] [--markdown FILE] [--targets postfix,mta]
  relaybench.py load --port P --sessions C --messages N --domains D --tag T  (the client)

Needs root (Postfix's master, port 25 and 53 on loopback addresses, a mount namespace), the
Debian packages postfix (smtp-sink) and dnsmasq-base, and util-linux's unshare. Everything
runs on loopback; every process the benchmark starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
POSTFIX_SH = HERE / "postfix.sh"
OURS_SH = HERE / "ours.sh"
SMTP_SINK = "/usr/sbin/smtp-sink"
DNSMASQ = "/usr/sbin/dnsmasq"
POSTCONF = "/usr/sbin/postconf"

HOST = "127.0.0.1"
DNS_ADDRESS = "127.0.5.53"  # a loopback address nothing else here uses; port 53 (libc's)
SINK_PORT = 25
ZONE = "bench.test"
SENDER = f"bench@src.{ZONE}"  # src.bench.test has no records: a bounce could go nowhere
HELO = "bench.localdomain"
END_MARK = "-- end of relay bench message --"
DNS_TTL = 300

# smtp-sink delays are whole seconds (`-W command:seconds[:odds]`); with odds p the delay is
# seconds * k where k counts the dice rolls (0..99) below p before one at or above it, so the
# mean is seconds * q / (1 - q), q = p / 100: odds 5 -> 53 ms, odds 10 -> 111 ms on average.
# Only replies that the client must wait for before it sends more can be delayed: smtp-sink
# answers commands pipelined behind a delayed reply at once and crashes on a delayed "."
# followed by a pipelined QUIT, so the "." reply is never delayed here. The DATA reply ends a
# pipelined MAIL/RCPT/DATA group, so its delay stands for both round trips of a transaction.
LATENCY_PRESETS = {
    "internet": "connect:1:5,ehlo:1:5,data:1:10",
    "slow": "data:1",
    "none": "",
}

DEFAULT_MESSAGES = 20000
QUICK_MESSAGES = 2000
POLL_SECONDS = 0.1
CONNECTION_SAMPLE_SECONDS = 0.25


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def public_path(text: str, tmp: str | None = None) -> str:
    """The text with this machine's absolute paths replaced by REPO/ and TMP/."""
    if tmp:
        text = text.replace(tmp, "TMP")
    return text.replace(str(REPO), "REPO")


# ---------------------------------------------------------------------------------------------
# addresses


def sink_address(n: int) -> str:
    """Loopback address of destination n (1-based): 127.0.1.1 .. 127.0.1.254, 127.0.2.1 ..."""
    return f"127.0.{1 + (n - 1) // 254}.{1 + (n - 1) % 254}"


def domain(n: int) -> str:
    return f"d{n}.{ZONE}"


def require_free(address: str, port: int, kinds: tuple[int, ...]) -> None:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                name = "udp" if kind == socket.SOCK_DGRAM else "tcp"
                raise BenchError(f"{address}:{port}/{name} is in use: {exc}") from exc


def accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def dns_answers(name: str) -> bool:
    """True if DNS_ADDRESS answers an A query for name with at least one record."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(query, (DNS_ADDRESS, 53))
            reply = s.recv(512)
        except OSError:
            return False
    if len(reply) < 12:
        return False
    flags: int
    answers: int
    _, flags, _, answers, _, _ = struct.unpack(">HHHHHH", reply[:12])
    return flags & 0xF == 0 and answers > 0


# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc


def proc_stat(pid: int) -> tuple[int, float, float] | None:
    """(parent PID, own CPU s, reaped children's CPU s) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return int(fields[1]), own, children


def process_name(pid: int) -> str:
    """Postfix daemons by name (comm); Python services by module (`-m mta.qmgr`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
    if b"-m" in argv[:-1]:
        return argv[argv.index(b"-m") + 1].decode(errors="replace")
    if comm.startswith("python") and len(argv) > 1:
        return Path(argv[1].decode(errors="replace")).name
    return comm


@dataclass
class ProcCpu:
    name: str
    own: float  # the process's own CPU seconds
    children: float  # CPU seconds of its children that it reaped


def tree_cpu(root: int) -> dict[int, ProcCpu]:
    """CPU of root and its live descendants, by PID."""
    stats: dict[int, tuple[int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat:
                stats[int(entry)] = stat
    tree: dict[int, ProcCpu] = {}
    for pid, (_, own, children) in stats.items():
        p = pid
        while p > 1 and p != root:
            p = stats[p][0] if p in stats else 0
        if p == root:
            tree[pid] = ProcCpu(process_name(pid), own, children)
    return tree


def total_cpu(tree: dict[int, ProcCpu]) -> float:
    """CPU seconds of the tree: a process that ended was added to its parent's
    cutime/cstime when reaped, so own + children over the live tree counts each once."""
    return sum(p.own + p.children for p in tree.values())


def cpu_delta(before: dict[int, ProcCpu], after: dict[int, ProcCpu]) -> dict[str, float]:
    """CPU seconds used between two snapshots, by process name; "exited" for processes that
    ended in between (reaped into their parent's cutime/cstime). The parts add up to the
    difference of total_cpu."""
    by_name: dict[str, float] = {}
    for pid, p in after.items():
        start = before.get(pid)
        used = p.own - (start.own if start else 0.0)
        by_name[p.name] = by_name.get(p.name, 0.0) + used
    gone = sum(p.own + p.children for pid, p in before.items() if pid not in after)
    kept = sum(p.children for pid, p in before.items() if pid in after)
    by_name["exited"] = sum(p.children for p in after.values()) - kept - gone
    return {n: round(v, 2) for n, v in sorted(by_name.items())}


def busy_cores() -> tuple[float, float]:
    """(busy, total) jiffies from /proc/stat."""
    values = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# ---------------------------------------------------------------------------------------------
# log counting


class LogScanner:
    """Counts this run's status=sent/deferred/bounced lines in a growing maillog."""

    def __init__(self, path: Path, agent_regex: str, tag: str) -> None:
        self.path = path
        self.regex = re.compile(
            rf"{agent_regex}\[(\d+)\]: .*to=<{re.escape(tag)}\.\d+\.\d+@d\d+\.{re.escape(ZONE)}>"
            r", .*status=(sent|deferred|bounced)"
        )
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""
        self.counts = {"sent": 0, "deferred": 0, "bounced": 0}
        self.samples: list[str] = []  # a few deferred/bounced lines, for the report
        self.pids: set[str] = set()  # delivery agent processes that logged this run's mail

    def poll(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.counts["sent"]
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace")
            m = self.regex.search(line)
            if m:
                self.pids.add(m.group(1))
                self.counts[m.group(2)] += 1
                if m.group(2) != "sent" and len(self.samples) < 5:
                    self.samples.append(line)
        return self.counts["sent"]


# ---------------------------------------------------------------------------------------------
# servers: DNS and sinks


def stop_process(proc: subprocess.Popen[bytes], name: str, group: bool = False) -> None:
    """SIGTERM (to the process group when group), then SIGKILL; always reaps."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    if group:  # members of the group that outlived the leader
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        log(f"WARNING: {name} (PID {proc.pid}) did not stop")


class Dns:
    """dnsmasq on DNS_ADDRESS:53 with an MX and an A record for every destination."""

    def __init__(self, workdir: Path, domains: int) -> None:
        self.workdir = workdir
        self.domains = domains
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [
            DNSMASQ,
            "-k",
            "--port=53",
            f"--listen-address={DNS_ADDRESS}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            f"--local=/{ZONE}/",
            f"--local-ttl={DNS_TTL}",
            "--cache-size=0",
        ]
        for n in range(1, self.domains + 1):
            argv.append(f"--mx-host={domain(n)},mx{n}.{ZONE},10")
            argv.append(f"--host-record=mx{n}.{ZONE},{sink_address(n)}")
        return argv

    def start(self) -> None:
        require_free(DNS_ADDRESS, 53, (socket.SOCK_DGRAM, socket.SOCK_STREAM))
        out = (self.workdir / "dnsmasq.log").open("wb")
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 15
        while not dns_answers(f"mx{self.domains}.{ZONE}"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"dnsmasq did not answer on {DNS_ADDRESS}:53; see dnsmasq.log")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, "dnsmasq")

    def cpu(self) -> float:
        return total_cpu(tree_cpu(self.proc.pid)) if self.proc else 0.0


@dataclass
class SinkTally:
    received: int = 0  # distinct recipients of the run
    duplicates: int = 0  # extra copies of a recipient already received
    misrouted: int = 0  # recipients that reached another destination's sink
    incomplete: int = 0  # dump files still being written


class Sinks:
    """One smtp-sink per destination on sink_address(n):25, each dumping into its directory."""

    def __init__(self, workdir: Path, dumpdir: Path, domains: int, delays: str) -> None:
        self.workdir = workdir
        self.dumpdir = dumpdir
        self.domains = domains
        self.delays = [d for d in delays.split(",") if d]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.seen: dict[str, dict[str, int]] = {}  # tag -> recipient -> copies

    def argv(self, n: int) -> list[str]:
        argv = [SMTP_SINK, "-u", "nobody", "-4", "-d", f"{self.dumpdir}/s{n}/m."]
        for d in self.delays:
            argv += ["-W", d]
        return [*argv, f"{sink_address(n)}:{SINK_PORT}", "1024"]

    def start(self) -> None:
        for n in range(1, self.domains + 1):
            require_free(sink_address(n), SINK_PORT, (socket.SOCK_STREAM,))
        out = (self.workdir / "sinks.log").open("ab")
        try:
            for n in range(1, self.domains + 1):
                d = self.dumpdir / f"s{n}"
                d.mkdir(parents=True)
                shutil.chown(d, "nobody")
                self.procs.append(subprocess.Popen(self.argv(n), stdout=out, stderr=out))
        finally:
            out.close()
        deadline = time.monotonic() + 15
        for n, proc in enumerate(self.procs, 1):
            # A TCP connect would count as a session; wait for the listening socket instead.
            while not self._listening(sink_address(n)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"smtp-sink {n} did not listen; see sinks.log")
                time.sleep(0.05)

    @staticmethod
    def _listening(address: str) -> bool:
        hexaddr = f"{int.from_bytes(socket.inet_aton(address), 'little'):08X}:{SINK_PORT:04X}"
        return any(
            line.split()[1] == hexaddr and line.split()[3] == "0A"
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        )

    def stop(self) -> None:
        for n, proc in enumerate(self.procs, 1):
            stop_process(proc, f"smtp-sink {n}")

    def cpu(self) -> float:
        return sum(total_cpu(tree_cpu(p.pid)) for p in self.procs)

    def scan(self) -> None:
        """Reads the complete dump files into self.seen and deletes them."""
        for n in range(1, self.domains + 1):
            d = self.dumpdir / f"s{n}"
            for entry in os.scandir(d):
                path = Path(entry.path)
                text = path.read_text(errors="replace")
                if END_MARK not in text:
                    continue  # still being written; read it next time
                for line in text.split("\n", 40):
                    if line.startswith("X-Rcpt-Args: <"):
                        rcpt = line[len("X-Rcpt-Args: <") :].split(">", 1)[0]
                        tag = rcpt.split(".", 1)[0]
                        key = f"{rcpt}@s{n}"
                        per_tag = self.seen.setdefault(tag, {})
                        per_tag[key] = per_tag.get(key, 0) + 1
                path.unlink()

    def tally(self, tag: str) -> SinkTally:
        self.scan()
        t = SinkTally()
        rcpts: set[str] = set()
        for key, copies in self.seen.get(tag, {}).items():
            rcpt, sink = key.rsplit("@s", 1)
            if not rcpt.endswith(f"@d{sink}.{ZONE}"):
                t.misrouted += copies
                continue
            rcpts.add(rcpt)
            t.duplicates += copies - 1
        t.received = len(rcpts)
        for n in range(1, self.domains + 1):
            t.incomplete += sum(1 for _ in os.scandir(self.dumpdir / f"s{n}"))
        return t


# ---------------------------------------------------------------------------------------------
# the MTAs


class Target:
    name = ""
    agent_regex = ""  # the delivery agent's syslog name in the maillog, as a regex

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.meta: dict[str, Any] = {}

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def root_pid(self) -> int:
        raise NotImplementedError

    def maillog(self) -> Path:
        raise NotImplementedError

    def leftover(self) -> int | None:
        """Messages still in the queue."""
        return None


class PostfixTarget(Target):
    name = "postfix"
    agent_regex = r"postfix/smtp"

    def __init__(self, port: int, workdir: Path, transport_map: Path | None, keep: bool) -> None:
        super().__init__(port, workdir)
        self.transport_map = transport_map
        self.keep = keep

    def _script(self, *args: str) -> str:
        argv = ["bash", str(POSTFIX_SH), *args, "--dir", str(self.workdir)]
        return subprocess.run(
            argv, stdout=subprocess.PIPE, text=True, timeout=180, check=True
        ).stdout

    def start(self) -> None:
        args = ["up", "--port", str(self.port), "--dns", DNS_ADDRESS]
        if self.transport_map:
            args += ["--transport-map", str(self.transport_map)]
        self.meta = json.loads(self._script(*args))

    def stop(self) -> None:
        self._script("stop" if self.keep else "down")

    def root_pid(self) -> int:
        return int(self.meta["master_pid"])

    def maillog(self) -> Path:
        return Path(self.meta["log"])

    def leftover(self) -> int:
        return int(self._script("qsize").strip() or 0)


class OursTarget(Target):
    name = "mta"
    agent_regex = r"mta/smtp"

    def __init__(
        self, port: int, workdir: Path, transport_map: Path | None, main_cf: list[str]
    ) -> None:
        super().__init__(port, workdir)
        self.transport_map = transport_map
        self.main_cf = main_cf
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        require_free(HOST, self.port, (socket.SOCK_STREAM,))
        self.workdir.mkdir(parents=True)
        env = dict(os.environ, MTA_BENCH_DNS=DNS_ADDRESS, MTA_BENCH_MAIN_CF="\n".join(self.main_cf))
        if self.transport_map:
            env["MTA_BENCH_TRANSPORT_MAP"] = str(self.transport_map)
        argv = ["bash", str(OURS_SH), HOST, str(self.port), str(self.workdir)]
        out = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + 60
        while not accepts(HOST, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"our MTA did not listen on {HOST}:{self.port}; see server.log")
            time.sleep(0.1)
        version = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "mta", "hotpath"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
        self.meta = {
            "mta": "mta",
            "commit": version,
            "uncommitted_files": [line for line in dirty if line],
            "extra_main_cf": self.main_cf,
            "pid": self.proc.pid,
        }

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, "our MTA", group=True)

    def root_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def maillog(self) -> Path:
        return self.workdir / "maillog"

    def leftover(self) -> int | None:
        out = subprocess.run(
            [str(REPO / ".venv/bin/mta"), "-c", str(self.workdir / "conf"), "status", "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        try:
            status = json.loads(out.stdout)
        except ValueError:
            return None
        queues = status.get("queue") if isinstance(status, dict) else None
        if isinstance(queues, dict):
            return sum(v for v in queues.values() if isinstance(v, int))
        return None


def write_transport_map(path: Path, domains: int) -> None:
    lines = [f"{domain(n)} smtp:[{sink_address(n)}]:{SINK_PORT}" for n in range(1, domains + 1)]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)


# ---------------------------------------------------------------------------------------------
# the submission client (subcommand `load`)


class LoadError(Exception):
    pass


def message_bytes(tag: str, i: int, rcpts: list[str], size: int) -> bytes:
    """Header and a body of about size bytes, CRLF line ends, ending in END_MARK and '.'."""
    line = "x" * 78
    body_lines = [line] * max(0, size // 80)
    head = [
        f"From: <{SENDER}>",
        f"To: <{rcpts[0]}>",
        f"Subject: relay bench {tag} {i}",
        f"Message-ID: <{tag}.{i}@{HELO}>",
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
        "",
    ]
    return ("\r\n".join([*head, *body_lines, END_MARK, "."]) + "\r\n").encode()


async def read_reply(reader: asyncio.StreamReader, want: int, what: str) -> None:
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise LoadError(f"{what}: connection closed or short reply {line!r}")
        if line[3:4] != b"-":
            break
    if int(line[:3]) != want:
        raise LoadError(f"{what}: {line.decode(errors='replace').strip()}")


async def load_session(args: argparse.Namespace, next_index: Callable[[], int | None]) -> int:
    reader, writer = await asyncio.open_connection(args.host, args.port)
    sent = 0
    try:
        await read_reply(reader, 220, "greeting")
        writer.write(f"EHLO {HELO}\r\n".encode())
        await read_reply(reader, 250, "EHLO")
        while (i := next_index()) is not None:
            rcpts = [
                f"{args.tag}.{i}.{j}@{domain((i * args.rcpts + j) % args.domains + 1)}"
                for j in range(args.rcpts)
            ]
            writer.write(f"MAIL FROM:<{SENDER}>\r\n".encode())
            await read_reply(reader, 250, "MAIL")
            for r in rcpts:
                writer.write(f"RCPT TO:<{r}>\r\n".encode())
                await read_reply(reader, 250, f"RCPT {r}")
            writer.write(b"DATA\r\n")
            await read_reply(reader, 354, "DATA")
            writer.write(message_bytes(args.tag, i, rcpts, args.size))
            await read_reply(reader, 250, "end of data")
            sent += 1
        writer.write(b"QUIT\r\n")
        await read_reply(reader, 221, "QUIT")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return sent


async def load_main(args: argparse.Namespace) -> dict[str, Any]:
    counter = iter(range(args.messages))

    def next_index() -> int | None:
        return next(counter, None)

    t0 = time.monotonic()
    results = await asyncio.gather(
        *(load_session(args, next_index) for _ in range(args.sessions)), return_exceptions=True
    )
    seconds = time.monotonic() - t0
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    sent = sum(r for r in results if isinstance(r, int))
    return {"sent": sent, "seconds": round(seconds, 4), "errors": errors[:5]}


def cmd_load(args: argparse.Namespace) -> int:
    result = asyncio.run(load_main(args))
    print(json.dumps(result))
    return 0 if not result["errors"] and result["sent"] == args.messages else 1


# ---------------------------------------------------------------------------------------------
# one measurement


@dataclass
class Load:
    messages: int
    sessions: int
    rcpts: int
    size: int
    domains: int


@dataclass
class Options:
    drain_timeout: float
    stall_timeout: float
    run_timeout: float
    idle_timeout: float


def load_argv(target: Target, load: Load, tag: str) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "load",
        "--host",
        HOST,
        "--port",
        str(target.port),
        "--sessions",
        str(load.sessions),
        "--messages",
        str(load.messages),
        "--rcpts",
        str(load.rcpts),
        "--size",
        str(load.size),
        "--domains",
        str(load.domains),
        "--tag",
        tag,
    ]


class Connections:
    """Established connections to each sink, from /proc/net/tcp (the sink's side of each)."""

    def __init__(self, domains: int) -> None:
        self.index = {
            f"{int.from_bytes(socket.inet_aton(sink_address(n)), 'little'):08X}:{SINK_PORT:04X}": n
            for n in range(1, domains + 1)
        }
        self.peak: dict[int, int] = {}
        self.peak_total = 0

    def count(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split(None, 4)
                n = self.index.get(fields[1])
                if n is not None and fields[3] == "01":
                    counts[n] = counts.get(n, 0) + 1
        return counts

    def sample(self) -> None:
        counts = self.count()
        for n, c in counts.items():
            self.peak[n] = max(self.peak.get(n, 0), c)
        self.peak_total = max(self.peak_total, sum(counts.values()))

    def wait_idle(self, timeout: float) -> int:
        """Waits until no connection to any sink is open (the other MTA's cached sessions
        closing); returns how many are still open when timeout runs out."""
        deadline = time.monotonic() + timeout
        while (left := sum(self.count().values())) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left


def measure(target: Target, sinks: Sinks, load: Load, tag: str, opts: Options) -> dict[str, Any]:
    expected = load.messages * load.rcpts
    conns = Connections(load.domains)
    open_before = conns.wait_idle(opts.idle_timeout)
    scanner = LogScanner(target.maillog(), target.agent_regex, tag)
    cpu0 = tree_cpu(target.root_pid())
    sinks_cpu0 = sinks.cpu()
    core0 = busy_cores()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    client = subprocess.Popen(
        load_argv(target, load, tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    t1: float | None = None
    sent_at_submit_end = 0
    last, last_change, t_done = -1, t0, None
    next_sample = t0
    while True:
        n = scanner.poll()
        now = time.monotonic()
        if now >= next_sample:
            conns.sample()
            next_sample = now + CONNECTION_SAMPLE_SECONDS
        if t1 is None:
            if client.poll() is not None:
                t1 = now
                sent_at_submit_end = n
            elif now - t0 > opts.run_timeout:
                client.kill()
        if n >= expected and t_done is None:
            t_done = now
        if t1 is not None and t_done is not None:
            break
        if n != last:
            last, last_change = n, now
        if t1 is not None and (
            now - t1 > opts.drain_timeout or now - last_change > opts.stall_timeout
        ):
            break
        time.sleep(POLL_SECONDS)
    assert t1 is not None
    stdout, stderr = client.communicate()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        sub = json.loads(stdout)
    except ValueError:
        sub = {"errors": [stderr.decode(errors="replace")[-500:]]}
    sub["rc"] = client.returncode
    t_end = time.monotonic()
    cpu1 = tree_cpu(target.root_pid())
    cpu_parts = cpu_delta(cpu0, cpu1)
    cpu = total_cpu(cpu1) - total_cpu(cpu0)
    core1 = busy_cores()
    tally = sinks.tally(tag)
    ok = sub.get("rc") == 0
    res: dict[str, Any] = {
        "target": target.name,
        "tag": tag,
        "sessions": load.sessions,
        "messages": load.messages,
        "rcpts": load.rcpts,
        "size": load.size,
        "domains": load.domains,
        "expected_deliveries": expected,
        "submit_ok": ok,
        "submit_s": round(t1 - t0, 3),
        "submit_rate": round(load.messages / (t1 - t0), 1) if ok else None,
        "submit_errors": sub.get("errors", []),
        "sent_logged": scanner.counts["sent"],
        "deferred_logged": scanner.counts["deferred"],
        "bounced_logged": scanner.counts["bounced"],
        "sent_at_submit_end": sent_at_submit_end,
        "agent_processes": len(scanner.pids),
        "received": tally.received,
        "duplicates": tally.duplicates,
        "misrouted": tally.misrouted,
        "incomplete_dumps": tally.incomplete,
        "lost": expected - tally.received,
        "deliver_s": round(t_done - t0, 3) if t_done else None,
        "deliver_rate": round(expected / (t_done - t0), 1) if t_done and ok else None,
        "mta_cpu_s": round(cpu, 2),
        "mta_cpu_ms_per_delivery": round(cpu / expected * 1000, 3),
        "mta_cpu_by_process_s": {k: v for k, v in cpu_parts.items() if v},
        "sinks_cpu_s": round(sinks.cpu() - sinks_cpu0, 2),
        "client_cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 2),
        "busy_cores": round(
            (core1[0] - core0[0]) / max(1.0, core1[1] - core0[1]) * (os.cpu_count() or 1), 2
        ),
        "wall_s": round(t_end - t0, 3),
        "sink_connections_open_before": open_before,
        "max_connections_per_destination": max(conns.peak.values(), default=0),
        "max_connections_total": conns.peak_total,
        "failed_samples": scanner.samples,
    }
    left = target.leftover()
    if left is not None:
        res["queue_left"] = left
    return res


def describe(r: dict[str, Any]) -> str:
    s = f"{r['target']:8} C={r['sessions']:<3} submit {r['submit_rate']} msg/s"
    if not r["submit_ok"]:
        s = f"{r['target']:8} C={r['sessions']:<3} SUBMISSION FAILED {r['submit_errors'][:2]}"
    s += f", delivered {r['received']}/{r['expected_deliveries']}"
    if r["deliver_s"]:
        s += f" in {r['deliver_s']} s ({r['deliver_rate']}/s)"
    s += f", max conns/destination {r['max_connections_per_destination']}"
    s += f" (total {r['max_connections_total']})"
    s += (
        f", cpu {r['mta_cpu_ms_per_delivery']} ms/delivery, busy {r['busy_cores']} cores"
        f" (MTA {r['mta_cpu_s']} s, client {r['client_cpu_s']} s, sinks {r['sinks_cpu_s']} s)"
    )
    parts = sorted(r["mta_cpu_by_process_s"].items(), key=lambda kv: -kv[1])[:6]
    s += "\n      MTA cpu s: " + ", ".join(f"{k} {v}" for k, v in parts)
    if r["deferred_logged"] or r["bounced_logged"] or r["duplicates"] or r["misrouted"]:
        s += (
            f" [deferred {r['deferred_logged']}, bounced {r['bounced_logged']}, "
            f"dup {r['duplicates']}, misrouted {r['misrouted']}]"
        )
    return s


# ---------------------------------------------------------------------------------------------
# output


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        "| rep | C | MTA | submit msg/s | deliveries/s | received | lost | dup | deferred "
        "| max conns/destination | MTA cpu ms/delivery | busy cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        out.append(
            f"| {r['rep']} | {r['sessions']} | {r['target']} | {r['submit_rate'] or 'FAILED'} "
            f"| {r['deliver_rate'] or '-'} | {r['received']}/{r['expected_deliveries']} "
            f"| {r['lost']} | {r['duplicates']} | {r['deferred_logged']} "
            f"| {r['max_connections_per_destination']} "
            f"| {r['mta_cpu_ms_per_delivery']} | {r['busy_cores']} |"
        )
    ratios = ratio_rows(results)
    if ratios:
        out += [
            "",
            "| rep | C | deliveries/s mta ÷ postfix | cpu per delivery mta ÷ postfix |",
            "| --- | --- | --- | --- |",
        ]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in ratios]
    return "\n".join(out) + "\n"


def ratio_rows(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    by_key = {(r["rep"], r["sessions"], r["target"]): r for r in results}
    for (rep, c, name), ours in sorted(by_key.items()):
        pf = by_key.get((rep, c, "postfix"))
        if name != "mta" or not pf:
            continue
        rate = (
            round(ours["deliver_rate"] / pf["deliver_rate"], 2)
            if ours["deliver_rate"] and pf["deliver_rate"]
            else "-"
        )
        cpu = (
            round(ours["mta_cpu_ms_per_delivery"] / pf["mta_cpu_ms_per_delivery"], 2)
            if pf["mta_cpu_ms_per_delivery"]
            else "-"
        )
        rows.append((rep, c, rate, cpu))
    if len({r[0] for r in rows}) > 1:
        for c in sorted({r[1] for r in rows}):
            rates = [r[2] for r in rows if r[1] == c and isinstance(r[2], float)]
            if rates:
                rows.append(("median", c, round(statistics.median(rates), 2), ""))
    return rows


def machine() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""

    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "postfix": version([POSTCONF, "-d", "-h", "mail_version"]),
        "dnsmasq": version([DNSMASQ, "--version"]),
    }


# ---------------------------------------------------------------------------------------------
# run


@contextlib.contextmanager
def started(things: list[Any]) -> Iterator[None]:
    """Starts each thing in order; stops all that started, in reverse, whatever happens."""
    up: list[Any] = []
    try:
        for thing in things:
            up.append(thing)
            thing.start()
        yield
    finally:
        for thing in reversed(up):
            try:
                thing.stop()
            except Exception as exc:  # stop the others even if one fails
                log(f"WARNING: stopping {type(thing).__name__}: {exc}")


def cmd_run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise BenchError("needs root (Postfix master, ports 25/53, mount namespace)")
    for tool in (SMTP_SINK, DNSMASQ, POSTCONF, "/usr/bin/unshare"):
        if not os.access(tool, os.X_OK):
            raise BenchError(f"{tool} is missing (packages postfix, dnsmasq-base, util-linux)")
    messages = QUICK_MESSAGES if args.quick else args.messages
    sessions = [int(c) for c in args.sessions.split(",")]
    targets = args.targets.split(",")
    delays = LATENCY_PRESETS.get(args.latency, args.latency)
    opts = Options(args.drain_timeout, args.stall_timeout, args.run_timeout, args.idle_timeout)

    # Postfix's daemons (user postfix) must reach the work dir: not under a 0700 home.
    workdir = Path(tempfile.mkdtemp(prefix="mta-relay-bench.", dir=args.workdir or "/tmp"))
    workdir.chmod(0o755)
    dumpdir = Path(tempfile.mkdtemp(prefix="mta-relay-bench-sinks.", dir="/dev/shm"))
    dumpdir.chmod(0o755)
    tmp = str(workdir)
    log(f"work dir {workdir}, sink dumps in {dumpdir}")
    transport_map = None
    if args.routing == "transport":
        transport_map = workdir / "transport"
        write_transport_map(transport_map, args.domains)

    dns = Dns(workdir, args.domains)
    sinks = Sinks(workdir, dumpdir, args.domains, delays)
    all_targets: dict[str, Target] = {
        "postfix": PostfixTarget(args.base_port, workdir / "postfix", transport_map, args.keep),
        "mta": OursTarget(args.base_port + 1, workdir / "mta", transport_map, args.ours_set),
    }
    chosen = [all_targets[t] for t in targets]
    meta: dict[str, Any] = {
        "benchmark": "relay",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(),
        "settings": {
            "messages": messages,
            "sessions": sessions,
            "reps": args.reps,
            "domains": args.domains,
            "rcpts": args.rcpts,
            "size": args.size,
            "routing": args.routing,
            "latency": args.latency,
            "sink_delays": delays,
            "sink_argv_example": public_path(" ".join(sinks.argv(1)), str(dumpdir)),
            "dns": f"dnsmasq {DNS_ADDRESS}:53, TTL {DNS_TTL}",
            "destination_concurrency_limit": 20,
            "initial_destination_concurrency": 5,
            "postfix_process_limit": 100,
            "warmup": args.warmup,
        },
        "command": public_path(" ".join(shlex.quote(a) for a in sys.argv)),
    }
    results: list[dict[str, Any]] = []
    status = 0
    try:
        with started([dns, sinks, *chosen]):
            meta["targets"] = {
                t.name: json.loads(public_path(json.dumps(t.meta), tmp)) for t in chosen
            }
            if args.warmup:
                for t in chosen:
                    log(f"warm-up: {t.name}, {args.warmup} messages")
                    load = Load(args.warmup, max(sessions), 1, args.size, args.domains)
                    r = measure(t, sinks, load, f"w{t.name[0]}", opts)
                    log("  " + describe(r))
            for rep in range(1, args.reps + 1):
                order = chosen if rep % 2 else list(reversed(chosen))
                for c in sessions:
                    for t in order:
                        time.sleep(args.pause)
                        tag = f"{t.name[0]}{rep}c{c}"
                        load = Load(messages, c, args.rcpts, args.size, args.domains)
                        r = measure(t, sinks, load, tag, opts)
                        r["rep"] = rep
                        results.append(r)
                        log(f"rep {rep}: " + describe(r))
                        if r["lost"] or not r["submit_ok"]:
                            status = 1
    finally:
        if args.keep:
            log(f"kept {workdir} and {dumpdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.rmtree(dumpdir, ignore_errors=True)

    table = markdown(results, meta)
    print(table)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"meta": meta, "runs": results}, indent=1, default=str) + "\n"
        )
    if args.markdown:
        Path(args.markdown).write_text(
            f"# Relay benchmark {meta['started']}\n\nCommand: `{meta['command']}`\n\n"
            f"Settings: `{json.dumps(meta['settings'])}`\n\n{table}"
        )
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="relaybench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the benchmark")
    p.add_argument("-n", "--messages", type=int, default=DEFAULT_MESSAGES)
    p.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES} messages per run")
    p.add_argument("-c", "--sessions", default="10,50", help="submission sessions (default 10,50)")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--domains", type=int, default=50)
    p.add_argument("-r", "--rcpts", type=int, default=1, help="recipients per message")
    p.add_argument("-l", "--size", type=int, default=1024, help="body bytes per message")
    p.add_argument(
        "--latency",
        default="internet",
        help="sink delays: internet, slow, none, or smtp-sink -W specs, comma-separated",
    )
    p.add_argument("--routing", choices=("dns", "transport"), default="dns")
    p.add_argument("--targets", default="postfix,mta")
    p.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra main.cf line for our MTA only (an experiment, not the comparison)",
    )
    p.add_argument("--base-port", type=int, default=2725)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--pause", type=float, default=2.0)
    p.add_argument("--drain-timeout", type=float, default=600.0)
    p.add_argument("--stall-timeout", type=float, default=60.0)
    p.add_argument("--run-timeout", type=float, default=1200.0)
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        help="wait this long for the sinks to have no connection before a run",
    )
    p.add_argument("--workdir", help="parent of the work directory (default /tmp)")
    p.add_argument("--keep", action="store_true", help="keep logs, queues and dumps")
    p.add_argument("--json")
    p.add_argument("--markdown")
    q = sub.add_parser("load", help="submit messages (the benchmark's SMTP client)")
    q.add_argument("--host", default=HOST)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--sessions", type=int, required=True)
    q.add_argument("--messages", type=int, required=True)
    q.add_argument("--rcpts", type=int, default=1)
    q.add_argument("--size", type=int, default=1024)
    q.add_argument("--domains", type=int, required=True)
    q.add_argument("--tag", required=True)
    args = ap.parse_args(argv)
    try:
        return cmd_run(args) if args.command == "run" else cmd_load(args)
    except BenchError as exc:
        log(f"relaybench: error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
