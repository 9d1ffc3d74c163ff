"""A real one-node SLURM cluster on localhost, for the cluster acceptance test.

Uses the Debian packages ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them when
it runs as root). Everything lives in scratch directories: a munge key and socket, a
``slurm.conf`` with no accounting database (job states come from ``squeue``, and
``MinJobAge`` keeps finished jobs visible), free ports, state and logs. The daemons are
stopped by their pids when the context exits.

The config is also written to ``/etc/slurm/slurm.conf`` for the duration: the executor
plugin removes every ``SLURM_*`` variable (``SLURM_CONF`` too) before the job's ``srun``,
which then reads the default path. An existing file there that this harness did not
write is never touched: the cluster refuses to start instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by cotlens tests/acceptance/slurm_cluster.py"


def missing_tools() -> list[str]:
    """The executables this harness needs that are not installed."""
    paths = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
    out = [n for n, p in paths.items() if not Path(p).exists()]
    return out + [n for n in ("sbatch", "squeue", "sinfo", "mungekey") if shutil.which(n) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


@dataclass
class Cluster:
    root: Path
    conf: Path
    node: str
    cpus: int
    mem_mb: int
    env: dict[str, str]

    def run(self, *cmd: str) -> str:
        return subprocess.run(cmd, env=self.env, check=True, capture_output=True, text=True, timeout=60).stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller knows (finished ones included): id, name, state, comment."""
        out = self.run("squeue", "--states=all", "--noheader", "--format=%i|%j|%T|%k")
        rows = [line.split("|", 3) for line in out.splitlines() if line.strip()]
        return [{"id": r[0], "name": r[1], "state": r[2], "comment": r[3]} for r in rows]

    def submissions(self) -> int:
        """Batch jobs the controller accepted (``sbatch`` calls), from its log."""
        return (self.root / "log" / "slurmctld.log").read_text().count("_slurm_rpc_submit_batch_job: JobId=")


def _write_conf(root: Path, munge: Path, node: str, cpus: int, mem_mb: int) -> Path:
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                MARK,
                "ClusterName=cotlens-test",
                f"SlurmctldHost={node}(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge}/socket",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"StateSaveLocation={root}/state",
                f"SlurmdSpoolDir={root}/spool",
                f"SlurmctldPidFile={root}/slurmctld.pid",
                f"SlurmdPidFile={root}/slurmd.pid",
                f"SlurmctldLogFile={root}/log/slurmctld.log",
                f"SlurmdLogFile={root}/log/slurmd.log",
                "SlurmctldDebug=info",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "ReturnToService=2",
                "MpiDefault=none",
                "MinJobAge=3600",
                f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN",
                f"PartitionName=local Nodes={node} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    return conf


def _start_munge(d: Path) -> None:
    """munged as user munge, with its own key and socket in ``d`` (a short path that every
    user can traverse: munged refuses a socket directory others cannot reach)."""
    key = d / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    user = pwd.getpwnam("munge")
    for p in (d, key):
        os.chown(p, user.pw_uid, user.pw_gid)
    d.chmod(0o755)  # munged insists that its socket directory is searchable by all
    key.chmod(0o600)
    res = subprocess.run(
        [
            "runuser",
            "-u",
            "munge",
            "--",
            "/usr/sbin/munged",
            f"--socket={d}/socket",
            f"--key-file={key}",
            f"--pid-file={d}/munged.pid",
            f"--log-file={d}/munged.log",
            f"--seed-file={d}/seed",
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"munged did not start: {res.stderr.strip()}")


def _pid(root: Path, munge: Path, name: str) -> int | None:
    f = munge / "munged.pid" if name == "munged" else root / f"{name}.pid"
    try:
        return int(f.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(root: Path, munge: Path) -> None:
    for name in reversed(DAEMONS):
        pid = _pid(root, munge, name)
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster(root: Path, timeout: float = 60.0) -> Iterator[Cluster]:
    """Start munged, slurmctld and slurmd on localhost; yield; stop them by pid."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    mem = max(1000, _mem_mb() - 2000)
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(MARK):
        raise RuntimeError(f"{SYSTEM_CONF} exists (a real SLURM here?): the test cluster will not replace it")
    munge = Path(tempfile.mkdtemp(prefix="cotlens-munge-", dir="/tmp"))
    conf = _write_conf(root, munge, node, cpus, mem)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(conf, SYSTEM_CONF)
        _start_munge(munge)
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], env=env, check=True, capture_output=True)
        subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], env=env, check=True, capture_output=True)
        cluster = Cluster(root, conf, node, cpus, mem, env)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.SubprocessError):
                state = cluster.run("sinfo", "--noheader", "--format=%T").strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            logs = "\n".join(p.read_text()[-2000:] for p in (root / "log").glob("*.log"))
            raise RuntimeError(f"the SLURM node is '{state}', not idle, after {timeout} s:\n{logs}")
        yield cluster
    finally:
        _stop(root, munge)
        shutil.rmtree(munge, ignore_errors=True)
        SYSTEM_CONF.unlink(missing_ok=True)
