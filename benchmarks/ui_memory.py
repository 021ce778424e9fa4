"""How heavy is `cnnlab ui`? Processes and memory of the tree it starts, serving a store.

    python benchmarks/ui_memory.py [--short] [--compare] [--tracking-uri URI]

Makes a small store (one `cnnlab train` run in a temp folder) unless --tracking-uri names one,
starts `cnnlab ui` over it on a free port, waits until it answers, fetches the pages and API
calls a browser makes (the index, experiments, runs, metric history, artifacts, a plot, the model
registry), waits until the number of processes has stayed the same for a while, then prints
every process of the tree below `cnnlab ui` (itself included) with its resident memory (VmRSS)
and proportional set size (PSS, shared pages split among their users), and the totals.

--compare also measures, one after the other on the same store:
- "before": `cnnlab ui` with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true, which is how it ran before
  job execution was turned off (MLflow's `mlflow server` parent, uvicorn, and the job runner with
  its Huey consumers);
- "jobs off only": the previous command (`mlflow server ... --workers 1`) run directly with job
  execution off, i.e. the environment variable without `cnnlab ui`'s exec into uvicorn (its
  tree lacks the small `cnnlab ui` parent, about 35 MB).
--short waits less for the tree to settle (the full run also samples it for a while and reports
the peak).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
JOBS = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
HUEY_STORE = "_MLFLOW_HUEY_STORAGE_PATH"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_store(root: Path) -> str:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([str(VENV_BIN / "cnnlab"), "train", "--epochs", "1", "--train-size", "512",
                    "--val-size", "256", "--tracking-uri", uri], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    return uri


def tree(root: int) -> list[int]:
    """``root`` and its descendants, as /proc shows them now."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [root], {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found += sorted(frontier)
    return found


def kib(path: str, key: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def command_line(pid: int) -> str:
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    words = [Path(p.decode(errors="replace")).name if i == 0 else p.decode(errors="replace")
             for i, p in enumerate(parts)]
    if len(words) > 2 and words[1] == "-c":  # cnnlab ui's launcher, before it becomes uvicorn.
        words[2] = "<code>"
    return " ".join(w for w in words if not w.endswith("uvicorn_log_config.yaml"))


def snapshot(root: int) -> list[dict]:
    rows = []
    for pid in tree(root):
        rss = kib(f"/proc/{pid}/status", "VmRSS")
        if rss is None:
            continue  # Gone in between.
        rows.append({"pid": pid, "rss": rss, "pss": kib(f"/proc/{pid}/smaps_rollup", "Pss"),
                     "command": command_line(pid)})
    return rows


def fetch_pages(base: str) -> int:
    """What a browser asks for on the experiment page, a run page and the model registry."""

    def get(path: str, body: dict | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    count = 0
    get("/")
    experiments = json.loads(get("/ajax-api/2.0/mlflow/experiments/search",
                                 {"max_results": 100}))["experiments"]
    count += 2
    ids = [e["experiment_id"] for e in experiments]
    runs = json.loads(get("/ajax-api/2.0/mlflow/runs/search",
                          {"experiment_ids": ids, "max_results": 20})).get("runs", [])
    count += 1
    for run in runs[:3]:
        run_id = run["info"]["run_id"]
        get(f"/ajax-api/2.0/mlflow/runs/get?run_id={run_id}")
        for metric in run["data"].get("metrics", [])[:2]:
            get(f"/ajax-api/2.0/mlflow/metrics/get-history?run_id={run_id}"
                f"&metric_key={metric['key']}")
            count += 1
        files = json.loads(get(f"/ajax-api/2.0/mlflow/artifacts/list?run_uuid={run_id}"
                               "&path=plots")).get("files", [])
        count += 2
        for file in files[:1]:
            assert get(f"/get-artifact?path={file['path']}&run_uuid={run_id}")[:4] \
                == b"\x89PNG", file
            count += 1
    get("/ajax-api/2.0/mlflow/registered-models/search?max_results=10")
    return count + 1


def measure(label: str, command: list[str], env: dict, settle: float, stable: float,
            sample_for: float) -> dict:
    log = tempfile.TemporaryFile()
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    port = int(command[command.index("--port") + 1])
    base = f"http://127.0.0.1:{port}"
    huey_dirs: set[str] = set()
    try:
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() - started > 180:
                    log.seek(0)
                    raise SystemExit(f"{label}: the server did not answer:\n"
                                     f"{log.read().decode(errors='replace')}") from None
                time.sleep(0.25)
        ready = time.monotonic() - started
        requests = fetch_pages(base)
        # MLflow's job runner starts its consumers after uvicorn, and they take a while.
        # Settled: the same processes, and their memory within 2 %, for `stable` seconds.
        counts, memory, last_change = None, 0, time.monotonic()
        while True:
            now = time.monotonic()
            rows = snapshot(proc.pid)
            count, rss = len(rows), sum(r["rss"] for r in rows)
            if count != counts or abs(rss - memory) > 0.02 * memory:
                counts, memory, last_change = count, rss, now
            if now - started >= settle and now - last_change >= stable:
                break
            if now - started > settle + 120:
                break
            time.sleep(1)
        fetch_pages(base)  # Once more, now that everything runs.
        rows = snapshot(proc.pid)
        peak_rss = sum(r["rss"] for r in rows)
        until = time.monotonic() + sample_for
        while time.monotonic() < until:
            time.sleep(2)
            peak_rss = max(peak_rss, sum(r["rss"] for r in snapshot(proc.pid)))
        for row in rows:
            try:
                environ = Path(f"/proc/{row['pid']}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in environ:
                if item.startswith(HUEY_STORE.encode() + b"="):
                    huey_dirs.add(item.split(b"=", 1)[1].decode())
    finally:
        pids = tree(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        time.sleep(1)
        for pid in pids[1:]:  # Only the processes this run started, if any outlived it.
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    left = [d for d in sorted(huey_dirs) if Path(d).exists()]
    for folder in left:  # MLflow leaves its Huey stores behind in /dev/shm: ours, by env.
        for file in Path(folder).iterdir():
            file.unlink()
        Path(folder).rmdir()
    return {"label": label, "rows": rows, "ready_s": ready, "requests": requests,
            "peak_rss": peak_rss if sample_for else None, "left_huey_dirs": len(left)}


def show(result: dict) -> None:
    print(f"\n== {result['label']}: {len(result['rows'])} processes, up in "
          f"{result['ready_s']:.1f} s, {result['requests']} requests served")
    print(f"{'pid':>8} {'RSS MB':>8} {'PSS MB':>8}  command")
    for r in result["rows"]:
        pss = "-" if r["pss"] is None else f"{r['pss'] / 1024:.0f}"
        print(f"{r['pid']:>8} {r['rss'] / 1024:>8.0f} {pss:>8}  {r['command'][:110]}")


def total(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows]
    return "-" if None in values else f"{sum(values) / 1024:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="settle for less time")
    parser.add_argument("--compare", action="store_true",
                        help="also measure the previous way (job execution on) and the "
                             "environment variable alone")
    parser.add_argument("--tracking-uri", help="serve this store instead of a new small one")
    args = parser.parse_args()
    settle, stable, sample_for = (12.0, 4.0, 0.0) if args.short else (30.0, 10.0, 20.0)

    with tempfile.TemporaryDirectory(prefix="ui-memory-") as tmp:
        root = Path(tmp)
        uri = args.tracking_uri or make_store(root)
        env = {k: v for k, v in os.environ.items() if k != JOBS}
        cnnlab = [str(VENV_BIN / "cnnlab"), "ui", "--tracking-uri", uri]
        variants = []
        if args.compare:
            variants.append(("before: cnnlab ui, job execution on",
                             [*cnnlab, "--port", str(free_port())], {**env, JOBS: "true"}))
            old = [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1",
                   "--port", str(free_port()), "--workers", "1"]
            if uri.startswith("sqlite:///"):
                folder = Path(uri.removeprefix("sqlite:///")).parent.resolve()
                old += ["--default-artifact-root", folder.as_uri(), "--no-serve-artifacts"]
            variants.append(("jobs off only: mlflow server, no cnnlab ui parent", old,
                             {**env, JOBS: "false", "MLFLOW_BACKEND_STORE_URI": uri}))
        variants.append(("after: cnnlab ui", [*cnnlab, "--port", str(free_port())], env))
        results = []
        for label, command, variant_env in variants:
            # A fresh port for each: the previous server's may linger in TIME_WAIT.
            results.append(measure(label, command, variant_env, settle, stable, sample_for))
            show(results[-1])

    print(f"\n{'':52} {'procs':>5} {'RSS MB':>7} {'PSS MB':>7} {'peak RSS':>8}")
    for r in results:
        peak = "-" if r["peak_rss"] is None else f"{r['peak_rss'] / 1024:.0f}"
        print(f"{r['label'][:52]:52} {len(r['rows']):>5} {total(r['rows'], 'rss'):>7} "
              f"{total(r['rows'], 'pss'):>7} {peak:>8}")
    for r in results:
        if r["left_huey_dirs"]:
            print(f"({r['label']}: MLflow left {r['left_huey_dirs']} Huey store folder(s) "
                  "behind in /dev/shm; removed)")


if __name__ == "__main__":
    main()
