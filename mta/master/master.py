"""The master process: runs the services of master.cf, restarts them, reloads and stops them.

Life: take the flock on $data_directory/master.lock (a second master on the same queue is
refused), write master.pid, bind every listening socket, then start the children and watch
them until SIGTERM or SIGINT. A child is

    python -m MODULE -c CONFDIR --service NAME --listen-fd N... [-o name=value...]
                     [--max-use N] [--max-idle SECONDS]

with its listening sockets inherited and stderr on the log. inet smtpd services run
min(maxproc, CPU count) workers, each with its own SO_REUSEPORT socket per address; unix
services run one process on $queue_directory/private/<service> (mode 0600); qmgr runs one.

Restarts: a child that exits or dies is started again; when it keeps dying within
QUICK_DEATH_SECONDS of its start the delay doubles from 1 s up to MAX_RESTART_DELAY. A child
that exits 0 (it retired after max_use or max_idle) is replaced at once.

SIGHUP: read main.cf and master.cf again; a broken configuration is logged with file and line
and the old one stays. Otherwise a new generation of children starts on the same listening
sockets (kept open across the reload, so no connection waiting in a backlog is lost), and the
old generation gets SIGTERM and finishes its sessions and deliveries.
SIGTERM/SIGINT: children get SIGTERM and master_stop_timeout to finish, then SIGKILL.

master.status (JSON) is rewritten on every change; see mta.master.control.

Security: started as root, the master binds, makes queue_directory and data_directory (mode
0700) belong to mail_owner, and runs every child as mail_owner (setgid/setuid before exec). A
child never gets root. The master reads only its own configuration files.

Parameters:
  mail_owner (mta)            the children's user; when the default `mta` does not exist,
                              `nobody` with a warning (Postfix's default is `postfix`), or,
                              where nobody cannot reach the interpreter or this code, root
                              with a warning, so that the embedded defaults always run.
                              `root` is allowed with a warning (no privilege drop) for
                              hosts where only root can read the Python installation
  default_process_limit (100) maxproc for a `-` in master.cf
  master_stop_timeout (30s)   how long children may take to stop before SIGKILL
  max_use (0), max_idle (0)   passed to children when not 0 (0: never retire; event-loop
                              workers serve thousands of sessions, so Postfix's 100/100s
                              would only churn processes)
  inet_interfaces (127.0.0.1) addresses of inet services named without a host
  queue_directory, data_directory, syslog_name (mta)
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import pwd
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mta.config.maincf import ConfigError, Settings, load_settings
from mta.config.mastercf import Service, load_services
from mta.config.parameters import validate
from mta.config.values import duration, interface_addresses, number
from mta.master.control import PID_NAME, STATUS_NAME, acquire_lock
from mta.util.files import replace_file

log = logging.getLogger("mta.master")

LISTEN_BACKLOG = 1024
QUICK_DEATH_SECONDS = 10.0
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
DEFAULT_MAIL_OWNER = "mta"
FALLBACK_MAIL_OWNER = "nobody"
MAX_UNIX_SOCKET_PATH = 107  # sun_path holds 108 octets with the final NUL
MAX_OWNED_FILES = 10_000  # a bound on the chown walk over queue and data directories


class MasterError(Exception):
    """The master cannot start; str() is one line."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Whom the children run as; None fields: as the master itself (not started as root)."""

    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """One checked configuration: main.cf settings and the services to run."""

    config_dir: Path
    settings: Settings
    services: tuple[Service, ...]

    @property
    def data_directory(self) -> Path:
        return self.settings.data_directory


def load_config(config_dir: Path) -> Config:
    """Read and check main.cf and master.cf; ConfigError names the file and line.

    Warnings (unknown parameters, built-in services whose program is not installed) are logged.
    """
    config_dir = config_dir.absolute()
    settings = load_settings(config_dir)
    for warning in validate(settings):
        log.warning("warning: %s", warning)
    services = []
    for service in load_services(config_dir):
        if service.type not in ("inet", "unix"):
            raise ConfigError(f"{service.origin}: service type {service.type} is not supported")
        if not _module_exists(service.module):
            if service.builtin:
                log.warning(
                    "warning: %s: %s not installed: service %s skipped",
                    service.origin,
                    service.module,
                    service.name,
                )
                continue
            raise ConfigError(
                f"{service.origin}: command {service.command}: {service.module} is not installed"
            )
        services.append(service)
    duration(settings, "master_stop_timeout")
    return Config(config_dir, settings, tuple(services))


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


PR_SET_PDEATHSIG = 1


def _die_with_master(master_pid: int) -> Callable[[], None]:
    """Make a child get SIGTERM when the master dies, as Postfix's children exit with theirs.

    Without it, a master killed with -9 leaves its services running without the lock, and a
    second master could start a second qmgr on the same queue. Runs in the child between fork
    and exec, after the change of user (which would clear the setting).
    """

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != master_pid:  # the master died before prctl took effect
            os._exit(1)

    return arrange


def _service_code_paths() -> list[Path]:
    """What a child needs to reach: the interpreter and the mta package."""
    return [Path(os.path.realpath(sys.executable)), Path(__file__).resolve().parent.parent]


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may search every directory down to `path` and read/run `path`."""

    def allowed(target: Path, bits: int) -> bool:
        status = target.stat()
        if status.st_uid == user.pw_uid:
            return status.st_mode & (bits << 6) == bits << 6
        if status.st_gid == user.pw_gid:
            return status.st_mode & (bits << 3) == bits << 3
        return status.st_mode & bits == bits

    search, read_run = 0o1, 0o5
    return all(allowed(parent, search) for parent in path.parents) and allowed(path, read_run)


def mail_owner(settings: Settings) -> Owner:
    """mail_owner's uid and gid when running as root; otherwise the children run as we do."""
    if os.geteuid() != 0:
        return Owner()
    name = settings.get("mail_owner").strip()
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if name != DEFAULT_MAIL_OWNER:
            raise MasterError(f"mail_owner = {name}: no such user") from None
        entry = pwd.getpwnam(FALLBACK_MAIL_OWNER)
        if not all(_reachable(path, entry) for path in _service_code_paths()):
            # The embedded defaults must run as they are (the README's first command): on a
            # host where only root can reach the interpreter or this code, say so and go on.
            log.warning(
                "warning: mail_owner %s does not exist and %s cannot run %s; services run as"
                " root: create the user (useradd --system %s) or set mail_owner",
                name,
                FALLBACK_MAIL_OWNER,
                sys.executable,
                name,
            )
            return Owner()
        log.warning(
            "warning: mail_owner %s does not exist; running services as %s",
            name,
            FALLBACK_MAIL_OWNER,
        )
    if entry.pw_uid == 0:
        # Postfix refuses this; we allow it, loudly, for hosts where the interpreter is
        # readable by root only (test machines): nothing else can run the services there.
        log.warning("warning: mail_owner = %s: services run as root, with no privilege drop", name)
        return Owner()
    return Owner(entry.pw_uid, entry.pw_gid)


def prepare_directory(path: Path, owner: Owner) -> None:
    """Create `path` (mode 0700) if missing and give it and what it holds to the owner."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if owner.uid is None or owner.gid is None:
        return
    for count, entry in enumerate(_walk(path)):
        if count >= MAX_OWNED_FILES:
            log.warning("warning: %s: more than %d files, not all chowned", path, count)
            break
        os.lchown(entry, owner.uid, owner.gid)


def _walk(path: Path) -> Iterator[Path]:
    yield path
    for directory, subdirectories, files in os.walk(path):
        for name in (*subdirectories, *files):
            yield Path(directory, name)


@dataclass
class Slot:
    """One process position of a service: its listening sockets and its current child."""

    service: Service
    index: int
    sockets: list[socket.socket]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    generation: int = 0
    quick_deaths: int = 0
    restart_at: float | None = None  # monotonic time of a restart waiting for its backoff

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.service.name, self.service.type, self.index)


@dataclass
class Retiring:
    """A child of an older generation that was sent SIGTERM and has not exited yet."""

    slot_key: tuple[str, str, int]
    process: subprocess.Popen[bytes]
    started: float
    generation: int


@dataclass
class Master:
    """The running master; run() returns the exit status."""

    config: Config
    log_stream: IO[str] | None  # children's stderr; None: inherit ours
    owner: Owner = field(default_factory=Owner)
    generation: int = 1
    slots: dict[tuple[str, str, int], Slot] = field(default_factory=dict)
    retiring: list[Retiring] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    start_error: str = ""  # why the last child could not be started
    _wakeup_read: int = -1

    def open(self) -> None:
        """Bind every listening socket and start the children; MasterError when a socket
        cannot be opened (then nothing is left running)."""
        self._install_signals()
        try:
            self.slots = self._bind(self.config, {})
        except MasterError:
            self._stop()
            raise
        for slot in self.slots.values():
            self._spawn(slot)
            if slot.process is None:  # cannot exec at all: say so now, not in a restart loop
                self._stop()
                raise MasterError(
                    f"{slot.service.origin}: cannot start {slot.service.module} as uid "
                    f"{os.geteuid() if self.owner.uid is None else self.owner.uid}"
                    f": {self.start_error}"
                )
        self._write_status()
        log.info("daemon started -- %d processes", len(self.slots))

    def serve(self) -> int:
        """Watch the children until SIGTERM or SIGINT, then stop them; the exit status."""
        try:
            self._loop()
        finally:
            self._stop()
        return 0

    # -- signals ------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup_read = read
        signal.set_wakeup_fd(write)
        for signum in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _note_signal)

    def _signals(self, timeout: float | None) -> set[int]:
        readable, _, _ = select.select([self._wakeup_read], [], [], timeout)
        if not readable:
            return set()
        with contextlib.suppress(BlockingIOError):
            return set(os.read(self._wakeup_read, 512))
        return set()

    def _loop(self) -> None:
        while True:
            received = self._signals(self._next_timeout())
            if received & {signal.SIGTERM, signal.SIGINT}:
                log.info(
                    "terminating on signal %d", min(received & {signal.SIGTERM, signal.SIGINT})
                )
                return
            self._reap()
            if signal.SIGHUP in received:
                self._reload()
            self._restart_due()

    def _next_timeout(self) -> float | None:
        waits = [slot.restart_at for slot in self.slots.values() if slot.restart_at is not None]
        return max(0.0, min(waits) - time.monotonic()) if waits else None

    # -- sockets ------------------------------------------------------------------------------

    def _bind(
        self, config: Config, previous: dict[tuple[str, str, int], Slot]
    ) -> dict[tuple[str, str, int], Slot]:
        """Slots for every process of `config`, keeping the sockets of `previous` slots."""
        # One core is left to qmgr, the delivery agents and LMDB's single writer: on two cores
        # one smtpd worker beat two at every concurrency of the discard benchmark (two split
        # the group commits and contend for the writer lock; docs/performance.md).
        smtpd_workers = max(1, (os.cpu_count() or 1) - 1)
        default_limit = number(config.settings, "default_process_limit", minimum=1)
        slots: dict[tuple[str, str, int], Slot] = {}
        bound_ports: dict[tuple[str, str], int] = {}
        for service in config.services:
            limit = default_limit if service.maxproc is None else service.maxproc
            count = max(1, min(limit, smtpd_workers)) if service.command == "smtpd" else 1
            for index in range(count):
                key = (service.name, service.type, index)
                kept = previous.get(key)
                if kept is not None:
                    sockets = kept.sockets
                elif service.type == "inet":
                    sockets = self._bind_inet(service, config.settings, bound_ports)
                else:
                    sockets = [self._bind_unix(service, config.settings)]
                slots[key] = Slot(service, index, sockets)
        return slots

    def _bind_inet(
        self, service: Service, settings: Settings, bound_ports: dict[tuple[str, str], int]
    ) -> list[socket.socket]:
        host, port = service.inet_endpoint()
        hosts = [host] if host is not None else interface_addresses(settings.get("inet_interfaces"))
        sockets = []
        for address in hosts:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                # Port 0: the first worker's socket picks a port, the others share it.
                sock.bind((address, bound_ports.get((service.name, address), port)))
                sock.listen(LISTEN_BACKLOG)
            except OSError as error:
                sock.close()
                raise MasterError(
                    f"{service.origin}: cannot listen on {service.name} ({address}): "
                    f"{error.strerror}"
                ) from error
            bound_ports[(service.name, address)] = sock.getsockname()[1]
            sockets.append(sock)
        return sockets

    def _bind_unix(self, service: Service, settings: Settings) -> socket.socket:
        private = settings.queue_directory / "private"
        private.mkdir(mode=0o700, exist_ok=True)
        if self.owner.uid is not None and self.owner.gid is not None:
            os.chown(private, self.owner.uid, self.owner.gid)
        path = private / service.name
        if len(os.fsencode(path)) > MAX_UNIX_SOCKET_PATH:
            raise MasterError(f"{service.origin}: socket path {path} is too long for AF_UNIX")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            sock.bind(str(path))
            os.chmod(path, 0o600)
            if self.owner.uid is not None and self.owner.gid is not None:
                os.chown(path, self.owner.uid, self.owner.gid)
            sock.listen(LISTEN_BACKLOG)
        except OSError as error:
            sock.close()
            raise MasterError(f"{service.origin}: cannot listen on {path}: {error}") from error
        return sock

    # -- children -----------------------------------------------------------------------------

    def _command(self, slot: Slot) -> list[str]:
        service = slot.service
        settings = self.config.settings
        command = [
            sys.executable,
            "-m",
            service.module,
            "-c",
            str(self.config.config_dir),
            "--service",
            service.name,
        ]
        for sock in slot.sockets:
            command += ["--listen-fd", str(sock.fileno())]
        for name, value in service.overrides:
            command += ["-o", f"{name}={value}"]
        max_use = number(settings, "max_use")
        max_idle = duration(settings, "max_idle", minimum=0)
        if max_use:
            command += ["--max-use", str(max_use)]
        if max_idle:
            command += ["--max-idle", str(int(max_idle))]
        return command

    def _spawn(self, slot: Slot) -> None:
        slot.restart_at = None
        try:
            slot.process = subprocess.Popen(
                self._command(slot),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.log_stream,
                pass_fds=[sock.fileno() for sock in slot.sockets],
                user=self.owner.uid,
                group=self.owner.gid,
                extra_groups=[] if self.owner.uid is not None else None,
                cwd=os.getcwd(),
                preexec_fn=_die_with_master(os.getpid()),  # noqa: PLW1509 (no threads here)
            )
        except OSError as error:
            self.start_error = error.strerror or str(error)
            log.warning(
                "warning: %s: cannot start %s: %s", slot.service.origin, slot.service.module, error
            )
            slot.process = None
            self._schedule_restart(slot)
            return
        slot.started = time.time()
        slot.generation = self.generation

    def _schedule_restart(self, slot: Slot) -> None:
        slot.quick_deaths += 1
        delay = min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** (slot.quick_deaths - 1))
        slot.restart_at = time.monotonic() + delay
        if slot.quick_deaths > 1:
            log.warning(
                "warning: %s: %s keeps dying: throttling, next start in %.0fs",
                slot.service.origin,
                slot.service.module,
                delay,
            )

    def _reap(self) -> None:
        changed = False
        for slot in self.slots.values():
            process = slot.process
            if process is None or process.poll() is None:
                continue
            changed = True
            slot.process = None
            status = process.returncode
            lived = time.time() - slot.started
            if status < 0:
                log.warning(
                    "warning: process %s pid %d killed by signal %d",
                    slot.service.module,
                    process.pid,
                    -status,
                )
            elif status != 0:
                log.warning(
                    "warning: process %s pid %d exit status %d",
                    slot.service.module,
                    process.pid,
                    status,
                )
            if status == 0 or lived >= QUICK_DEATH_SECONDS:
                slot.quick_deaths = 0
                self._spawn(slot)  # retired after max_use/max_idle, or ran long enough
            else:
                self._schedule_restart(slot)
        still_retiring = [child for child in self.retiring if child.process.poll() is None]
        changed |= len(still_retiring) != len(self.retiring)
        self.retiring = still_retiring
        if changed:
            self._write_status()

    def _restart_due(self) -> None:
        now = time.monotonic()
        due = [s for s in self.slots.values() if s.restart_at is not None and s.restart_at <= now]
        for slot in due:
            self._spawn(slot)
        if due:
            self._write_status()

    # -- reload and stop ----------------------------------------------------------------------

    def _reload(self) -> None:
        try:
            config = load_config(self.config.config_dir)
            if config.data_directory != self.config.data_directory:
                raise ConfigError("data_directory cannot change on reload: restart instead")
            slots = self._bind(config, self.slots)
        except (ConfigError, MasterError) as error:
            log.error("error: reload refused, keeping the running configuration: %s", error)
            return
        self.generation += 1
        self.config = config
        old = self.slots
        self.slots = slots
        for slot in self.slots.values():
            self._spawn(slot)
        kept = {id(sock) for slot in slots.values() for sock in slot.sockets}
        for slot in old.values():
            if slot.process is not None:
                _signal(slot.process, signal.SIGTERM)
                self.retiring.append(
                    Retiring(slot.key, slot.process, slot.started, slot.generation)
                )
            for sock in slot.sockets:
                if id(sock) not in kept:
                    _close_listener(sock)
        log.info("reload -- generation %d, %d processes", self.generation, len(self.slots))
        self._write_status()

    def _children(self) -> list[subprocess.Popen[bytes]]:
        current = [slot.process for slot in self.slots.values() if slot.process is not None]
        return current + [child.process for child in self.retiring]

    def _stop(self) -> None:
        children = self._children()
        for process in children:
            _signal(process, signal.SIGTERM)
        timeout = duration(self.config.settings, "master_stop_timeout")
        deadline = time.monotonic() + timeout
        for process in children:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "warning: process %s pid %d did not stop within %.0fs: killed",
                    process.args[2] if isinstance(process.args, list) else "?",
                    process.pid,
                    timeout,
                )
                _signal(process, signal.SIGKILL)
                process.wait()
        for slot in self.slots.values():
            for sock in slot.sockets:
                _close_listener(sock)
        data = self.config.data_directory
        for name in (STATUS_NAME, PID_NAME):
            with contextlib.suppress(FileNotFoundError):
                (data / name).unlink()
        log.info("daemon stopped")

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        services: list[dict[str, Any]] = []
        by_service: dict[tuple[str, str], dict[str, Any]] = {}
        for slot in self.slots.values():
            service = slot.service
            entry = by_service.get((service.name, service.type))
            if entry is None:
                entry = {
                    "name": service.name,
                    "type": service.type,
                    "command": service.command,
                    "listen": [_socket_name(sock) for sock in slot.sockets],
                    "processes": [],
                }
                by_service[(service.name, service.type)] = entry
                services.append(entry)
            if slot.process is not None:
                entry["processes"].append(
                    {
                        "pid": slot.process.pid,
                        "started": slot.started,
                        "generation": slot.generation,
                    }
                )
        return {
            "pid": os.getpid(),
            "started": self.started,
            "generation": self.generation,
            "services": services,
            "retiring": [child.process.pid for child in self.retiring],
        }

    def _write_status(self) -> None:
        path = self.config.data_directory / STATUS_NAME
        replace_file(path, json.dumps(self.status(), indent=1).encode() + b"\n", mode=0o644)


def _note_signal(_signum: int, _frame: object) -> None:
    """The signal's number reaches the main loop through the wake-up fd; nothing to do here."""


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _close_listener(sock: socket.socket) -> None:
    if sock.family == socket.AF_UNIX:
        with contextlib.suppress(OSError):
            os.unlink(sock.getsockname())
    sock.close()


def _socket_name(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return str(name)
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_master(config: Config, log_stream: IO[str] | None) -> Master:
    """Prepare the directories, take the lock, write master.pid, bind and start the children.

    Raises AlreadyRunning (mta.master.control) when another master holds the lock, and
    MasterError when mail_owner, the directories or a listening socket is wrong. The caller
    then calls serve().
    """
    owner = mail_owner(config.settings)
    try:
        prepare_directory(config.settings.queue_directory, owner)
        prepare_directory(config.data_directory, owner)
    except OSError as error:
        raise MasterError(f"cannot prepare {error.filename}: {error.strerror}") from error
    acquire_lock(config.data_directory)  # held, close-on-exec, until this process exits
    replace_file(config.data_directory / PID_NAME, f"{os.getpid()}\n".encode(), mode=0o644)
    master = Master(config, log_stream, owner)
    master.open()
    return master
