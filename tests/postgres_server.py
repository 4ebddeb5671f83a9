"""A throwaway PostgreSQL server for tests: Debian's package, a cluster in a temp dir.

`make test` (and `.ci/run`) run as root on the CI machine: the package is installed with
apt-get when missing, and the cluster is created and run as the `postgres` system user the
package creates (postgres refuses to run as root). Another user runs it as themselves, and
without the package gets `Unavailable` (tests/conftest.py fails with it when CI is set).
The server listens on a free port of 127.0.0.1 with its socket in its own folder, so
several test workers each run their own.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lake.settings import REPO_ROOT

SUPERUSER = "lake_tests"
START_BOUND_S = 60
_APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


class Unavailable(RuntimeError):
    """PostgreSQL is not installed and cannot be installed by this user."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def in_ci(environ: Mapping[str, str]) -> bool:
    """CI must run every test: there a missing server fails the session, never skips it."""
    return environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def bin_dir() -> Path | None:
    """The newest installed server's binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _major_version(initdb: str) -> int:
    version = Path(initdb).parts[-3]
    return int(version) if version.isdigit() else 0


def ensure_installed() -> Path:
    """The server's bin folder, installing Debian's `postgresql` first when root."""
    found = bin_dir()
    if found:
        return found
    if os.geteuid() != 0:
        raise Unavailable(
            "PostgreSQL is not installed and this user cannot install it: run "
            "`apt-get install -y postgresql` as root (the CI machine's tests run as root)"
        )
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=_APT_ENV, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=_APT_ENV, check=True)
        subprocess.run(install, env=_APT_ENV, check=True)
    found = bin_dir()
    if not found:
        raise Unavailable("apt-get installed postgresql but no initdb was found")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start(port: int) -> Server:
    """initdb a new cluster in a temp dir and start it on 127.0.0.1:port."""
    bindir = ensure_installed()
    data_dir = Path(tempfile.mkdtemp(prefix="lake-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    cluster = data_dir / "cluster"
    initdb = [str(bindir / "initdb"), "-D", str(cluster), "-U", SUPERUSER, "--auth=trust"]
    subprocess.run(_as_server_user([*initdb, "-E", "UTF8"]), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data_dir} -c fsync=off"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(cluster), "-l", str(data_dir / "server.log")]
    subprocess.run(
        _as_server_user([*pg_ctl, "-o", options, "-w", "-t", str(START_BOUND_S), "start"]),
        check=True,
        capture_output=True,
    )
    return Server("127.0.0.1", port, SUPERUSER, data_dir)


def stop(server: Server) -> None:
    """Stop the server (fast shutdown) and delete its cluster."""
    bindir = bin_dir()
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(server.data_dir / "cluster"), "-m", "fast"]
    subprocess.run(_as_server_user([*pg_ctl, "-w", "stop"]), check=False, capture_output=True)
    shutil.rmtree(server.data_dir, ignore_errors=True)


def create_database(server: Server, name: str) -> str:
    """A new empty database; its URL."""
    import psycopg2  # installed with dagster-postgres (not in the core's venv)
    from psycopg2 import sql

    connection = psycopg2.connect(server.url())
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()
    return server.url(name)


def instance_settings(database_url: str) -> tuple[str, dict[str, str]]:
    """The project's dagster.yaml with deploy/dagster.yaml's storage, and the DAGSTER_PG_*
    variables that storage reads for `database_url` (no TLS on a loopback throwaway)."""
    import yaml

    settings = yaml.safe_load((REPO_ROOT / "orchestration" / "dagster.yaml").read_text())
    storage = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())["storage"]
    config = storage["custom"]["config"] if "custom" in storage else storage["postgres"]
    config["postgres_db"]["params"] = {"sslmode": "disable"}
    settings["storage"] = storage
    url = urlparse(database_url)
    env = {
        "DAGSTER_PG_HOST": url.hostname or "",
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_DB": url.path.lstrip("/"),
        "DAGSTER_PG_USERNAME": url.username or "",
        "DAGSTER_PG_PASSWORD": "",
    }
    return yaml.safe_dump(settings, sort_keys=False), env
