"""Power cuts against the real `sextant engine`, on a FUSE file system that
keeps unsynced file data only in its own memory (volatile_fs.py).

Each trial mounts the file system over a backing folder, starts the engine on
it, writes batches (re-upserts of a small id pool, deletes, explicit
checkpoints) through the binary protocol and records each acknowledged one;
at a random moment it SIGKILLs the file system (the power cut: unsynced data
is gone) and then the engine, remounts, restarts the engine and checks that
every acknowledged write is present and current, the batch in flight is all
there or not at all, and the collection opens. Beside the engine,
`sextant debug sqlite-writer` commits rows through SextantSQLite (WAL mode,
synchronous=FULL, as the services open their databases) on the same mount;
every row whose COMMIT returned must be there after the cut, and the database
must pass SQLite's integrity check.

    .venv-test/bin/python tools/crash/fuse_power_loss.py --trials 20 [--seed S]

Needs /dev/fuse, fuse3 and Debian's python3-pyfuse3 (tools/setup --test).
"""
import argparse
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sextant_client import Client, SextantError  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SEXTANT = os.environ.get("SEXTANT_BIN", os.path.join(ROOT, ".build", "release", "sextant"))
FS = os.path.join(ROOT, "tools", "crash", "volatile_fs.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-pyfuse3
DIMENSION = 8
ID_POOL = 300


def vector(record_id, version):
    rng = random.Random(f"{record_id}:{version}")
    return [rng.uniform(-1, 1) for _ in range(DIMENSION)]


def mount(backing, mountpoint, log):
    process = subprocess.Popen([SYSTEM_PYTHON, FS, backing, mountpoint], stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.ismount(mountpoint):
            return process
        if process.poll() is not None:
            raise RuntimeError(f"the FUSE file system exited with {process.returncode}")
        time.sleep(0.05)
    raise RuntimeError("the FUSE file system did not mount")


def unmount(process, mountpoint):
    if process.poll() is None:
        process.kill()
    process.wait(timeout=20)
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], stderr=subprocess.DEVNULL, check=False)


def start_engine(data, log_path):
    log = open(log_path, "ab")
    engine = subprocess.Popen([SEXTANT, "engine", "--data", data, "--listen", "127.0.0.1:0"], stdout=log, stderr=log)
    deadline = time.time() + 60
    while time.time() < deadline:
        with open(log_path, "rb") as handle:
            text = handle.read().decode(errors="replace")
        found = re.findall(r"listening on \[IPv4\][^\n]*:(\d+)", text)
        if found:
            return engine, int(found[-1])
        if engine.poll() is not None:
            raise RuntimeError(f"the engine exited with {engine.returncode}: {text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("the engine did not start")


def trial(number, rng, work):
    backing = os.path.join(work, f"trial-{number}", "backing")
    mountpoint = os.path.join(work, f"trial-{number}", "mnt")
    os.makedirs(backing)
    os.makedirs(mountpoint)
    fs_log = open(os.path.join(work, f"trial-{number}", "fs.log"), "ab")
    fs = mount(backing, mountpoint, fs_log)
    engine, port = start_engine(os.path.join(mountpoint, "data"), os.path.join(work, f"trial-{number}", "engine-before.log"))
    sqlite_acks = os.path.join(work, f"trial-{number}", "sqlite-acks")
    sqlite_writer = subprocess.Popen(
        [SEXTANT, "debug", "sqlite-writer", "--database", os.path.join(mountpoint, "ledger.sqlite3"), "--ack-log", sqlite_acks],
        stdout=fs_log, stderr=fs_log)
    acknowledged = {}  # id -> version (None: deleted)
    pending = None
    cut_at = rng.uniform(0.3, 2.5)
    stop = threading.Event()

    def cut():
        if not stop.wait(cut_at):
            fs.kill()  # the power goes: unsynced file data is lost with this process
            engine.kill()
            sqlite_writer.kill()

    timer = threading.Thread(target=cut)
    timer.start()
    batches = 0
    try:
        client = Client("127.0.0.1", port, timeout=10)
        client.create_collection("power", dimension=DIMENSION, metric="l2", get_or_create=True)
        version = 0
        while True:
            version += 1
            roll = rng.random()
            if roll < 0.08:
                pending = {}
                client.checkpoint("power")
            elif roll < 0.2 and acknowledged:
                live = [k for k, v in acknowledged.items() if v is not None]
                ids = sorted(set(rng.choice(live) for _ in range(rng.randint(1, 10)))) if live else []
                pending = {i: None for i in ids}
                if ids:
                    client.delete("power", ids=ids)
            else:
                ids = sorted(set(f"r{rng.randrange(ID_POOL)}" for _ in range(rng.randint(1, 60))))
                pending = {i: version for i in ids}
                client.upsert("power", ids, [vector(i, version) for i in ids],
                              documents=[f"{i} v{version}" for i in ids], metadatas=[{"version": version} for i in ids])
            acknowledged.update(pending)
            pending = None
            batches += 1
    except (SextantError, OSError):
        pass  # the cut came
    finally:
        stop.set()
        timer.join()
        engine.kill()
        engine.wait()
        sqlite_writer.kill()
        sqlite_writer.wait()
        unmount(fs, mountpoint)

    problems = []
    with open(sqlite_acks, "rb") if os.path.exists(sqlite_acks) else open(os.devnull, "rb") as handle:
        committed = [int(line) for line in handle.read().split(b"\n") if line.strip()]
    fs = mount(backing, mountpoint, fs_log)
    problems += check_sqlite(os.path.join(mountpoint, "ledger.sqlite3"), committed)
    try:
        engine, port = start_engine(os.path.join(mountpoint, "data"), os.path.join(work, f"trial-{number}", "engine-after.log"))
    except RuntimeError as error:
        unmount(fs, mountpoint)
        return batches + len(committed), problems + [f"the engine does not start after the cut: {error}"]
    try:
        client = Client("127.0.0.1", port, timeout=30)
        try:
            names = [c.name for c in client.list_collections()]
        except SextantError as error:
            names = []
            problems.append(f"listing collections failed: {error}")
        if "power" not in names:
            if acknowledged:
                problems.append(f"the collection is gone with {len(acknowledged)} acknowledged ids")
        else:
            ids = sorted(set(acknowledged) | set(pending or {}))
            found = {}
            for start in range(0, len(ids), 200):
                got = client.get("power", ids=ids[start:start + 200], include=["metadatas", "documents"])
                for record in got:
                    found[record["id"]] = record["metadata"]["version"]
                    if record["document"] != f"{record['id']} v{record['metadata']['version']}":
                        problems.append(f"{record['id']}: document does not match its version")
            if pending:
                new = all(found.get(i) == v for i, v in pending.items())
                old = all(found.get(i) == acknowledged.get(i) for i in pending)
                if not new and not old:
                    problems.append(f"the batch in flight is half-applied ({len(pending)} ids)")
            for i in ids:
                if pending and i in pending:
                    continue
                if found.get(i) != acknowledged.get(i):
                    problems.append(f"{i}: found {found.get(i)}, acknowledged {acknowledged.get(i)}")
        client.close()
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=60)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        unmount(fs, mountpoint)
    return batches + len(committed), problems


def check_sqlite(path, committed):
    if not committed:
        return []
    try:
        db = sqlite3.connect(path)
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        rows = {n for (n,) in db.execute("SELECT n FROM rows")}
        latest = db.execute("SELECT n FROM latest WHERE id = 1").fetchone()
        db.close()
    except sqlite3.Error as error:
        return [f"sqlite: the database does not open after the cut: {error}"]
    problems = [] if integrity == "ok" else [f"sqlite: integrity check says {integrity}"]
    lost = [n for n in committed if n not in rows]
    if lost:
        problems.append(f"sqlite: {len(lost)} committed rows lost (first {lost[:5]}) of {len(committed)}")
    if latest is None or latest[0] < max(committed):
        problems.append(f"sqlite: latest row {latest} is older than the last commit {max(committed)}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", action="store_true", help="keep the trials' folders")
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    work = tempfile.mkdtemp(prefix="sextant-fuse-power-")
    failed = 0
    total = 0
    started = time.time()
    try:
        for number in range(arguments.trials):
            batches, problems = trial(number, rng, work)
            total += batches
            if problems:
                failed += 1
                print(f"trial {number}: FAILED after {batches} acknowledged steps; folder {work}/trial-{number}")
                for problem in problems[:8]:
                    print(f"  {problem}")
            elif not arguments.keep:
                shutil.rmtree(os.path.join(work, f"trial-{number}"), ignore_errors=True)
    finally:
        if not arguments.keep and failed == 0:
            shutil.rmtree(work, ignore_errors=True)
    print(f"fuse power-loss: {arguments.trials} cuts of the real engine, seed {arguments.seed}; {total} acknowledged steps "
          f"checked; {failed} failed; {int(time.time() - started)} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
