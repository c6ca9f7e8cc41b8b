"""Run every example DAG against a private Anaplan emulator with ``dag.test()`` and print one summary per DAG.

Run by ``./scripts/demo`` with the Airflow 3.3.2 venv's Python. No Anaplan account is needed:

1. a throw-away ``AIRFLOW_HOME`` (SQLite metadata DB, migrated once) and ``AIRFLOW__CORE__DAGS_FOLDER=example_dags``;
2. the emulator as a subprocess (``python -m airflow_provider_anaplan.emulator --port 0 --task-duration 0.2``);
3. connection ``anaplan_default`` as ``AIRFLOW_CONN_ANAPLAN_DEFAULT`` pointing at it;
4. each DAG's ``dag.test()`` (deferred tasks run their trigger inline), its output written under ``--output``
   (the ``output`` param of the DAGs that write files);
5. a summary per DAG (tasks, outcome, rows, files written), then the emulator is stopped.

Exits 1 if any DAG run did not succeed (its task log's last lines are shown), 2 on a setup failure.

    python scripts/run_examples.py                      # every DAG in example_dags/
    python scripts/run_examples.py anaplan_mapped_imports -v   # one DAG, with the whole Airflow log
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
DEFAULT_OUTPUT = REPO_ROOT / ".demo" / "example-output"
TASK_DURATION = "0.2"  # seconds per emulated Anaplan action (or process step)
POLL_INTERVAL = "0.1"  # the example DAGs' poll interval (ANAPLAN_EXAMPLE_POLL_INTERVAL; 5 s against Anaplan)
LOG_TAIL_LINES = 60
#: The examples in the README's order; any other file in example_dags/ runs after them.
ORDER = (
    "anaplan_nightly_load",
    "anaplan_export_to_storage",
    "anaplan_process_with_files",
    "anaplan_alm_promotion",
    "anaplan_wait_for_external_task",
    "anaplan_mapped_imports",
)

#: The ALM stage of example 4 needs a test model: the emulator gets a TEST copy of "Sales Forecast DEV" at the
#: revision production is at (what an Anaplan admin does once with "Copy model"), and quick ALM tasks.
TEST_MODEL_NAME = "Sales Forecast TEST"
ALM_TASK_DURATION = 0.2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_walkthrough import (  # noqa: E402 - imports no airflow
    DEFAULT_EMAIL,
    DEFAULT_PASSWORD,
    DemoError,
    running_emulator,
)

from airflow_provider_anaplan.client import token_cache  # noqa: E402 - imports no airflow


def prepare_airflow_environment() -> Path:
    """A throw-away AIRFLOW_HOME and the settings the examples need; before anything imports airflow (it reads its
    configuration once, at import)."""
    if "airflow" in sys.modules:  # pragma: no cover
        raise RuntimeError("run_examples.py must set AIRFLOW_HOME before airflow is imported")
    home = Path(tempfile.mkdtemp(prefix="anaplan-examples-airflow-home-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "ANAPLAN_EXAMPLE_POLL_INTERVAL": POLL_INTERVAL,
        }
    )
    os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    os.environ.pop("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", None)
    return home


def serve_emulator(argv: list[str]) -> int:
    """``python scripts/run_examples.py --serve-emulator [emulator options]``: the emulator's own command line, with
    a TEST model added to the bundled tenant (a copy of DEV, sharing its ALM lineage) and quick ALM tasks."""
    from airflow_provider_anaplan.emulator import __main__ as cli
    from airflow_provider_anaplan.emulator.alm_state import REVISION_REGIONS, SALES_FORECAST_DEV, alm_for

    build_state = cli.build_state

    def with_test_model(args: argparse.Namespace) -> Any:
        state = build_state(args)
        alm = alm_for(state)
        alm.options.sync_duration = alm.options.report_duration = ALM_TASK_DURATION
        alm.copy_model(SALES_FORECAST_DEV, TEST_MODEL_NAME, revision_id=REVISION_REGIONS)
        return state

    cli.build_state = with_test_model
    return cli.main(argv)


# ---------------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def output_to(path: Path | None) -> Iterator[None]:
    """Send everything written to fds 1 and 2 (Airflow's logs, the tasks' prints) to ``path``; None: leave as is."""
    if path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def load_dag(path: Path) -> Any:
    """Import a DAG file by path (as the DAG processor does) and return its ``dag``."""
    spec = importlib.util.spec_from_file_location(f"anaplan_example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def return_values(dag_run: Any) -> dict[str, list[Any]]:
    """Every task's XCom return value of the run (a list per task: one per mapped instance)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict[str, list[Any]] = {}
    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key="return_value")
        ).all()
        for row in sorted(rows, key=lambda r: (r.task_id, r.map_index)):
            values.setdefault(row.task_id, []).append(XComModel.deserialize_value(row))
    return values


def row_totals(values: dict[str, list[Any]]) -> dict[str, int]:
    """Rows loaded and rejected, summed over the Anaplan operators' and sensors' results (each task counted once)."""
    totals = {"loaded": 0, "rejected": 0, "downloaded": 0}
    for results in values.values():
        for result in results:
            if not isinstance(result, dict):
                continue
            rows = result.get("rows")
            if isinstance(rows, dict) and "failed" in rows:
                totals["loaded"] += int(rows.get("loaded") or 0)
                totals["rejected"] += int(rows.get("failed") or 0)
            downloads = [result, *(d for d in result.get("downloads") or () if isinstance(d, dict))]
            totals["downloaded"] += sum(int(d.get("row_count") or 0) for d in downloads if "path" in d)
    return totals


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"  | {line}" for line in text[-lines:])


# ---------------------------------------------------------------------------------------------------- the run
def run_one(path: Path, output_root: Path, log_dir: Path | None) -> tuple[bool, str]:
    """``dag.test()`` one example; (succeeded, summary text)."""
    started = time.monotonic()
    log_file = log_dir / f"{path.stem}.log" if log_dir else None
    dag_run, error = None, None
    with output_to(log_file):
        try:
            dag = load_dag(path)
            out_dir = output_root / dag.dag_id
            conf = {"output": f"file://{out_dir}"} if "output" in dag.params else {}
            dag_run = dag.test(run_conf=conf or None)
        except Exception as exc:  # the file or dag.test() itself broke (a task failure only sets the run's state)
            error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    if dag_run is None:
        return False, f"{path.stem}: ERROR after {seconds:.1f}s: {error}"

    tis = dag_run.get_task_instances()
    states: dict[str, int] = {}
    for ti in tis:
        states[str(ti.state)] = states.get(str(ti.state), 0) + 1
    ok = str(dag_run.state) == "success"
    values = return_values(dag_run)
    rows = row_totals(values)
    written = files_under(out_dir)
    names = sorted({ti.task_id for ti in tis})
    lines = [
        f"{dag.dag_id}: {str(dag_run.state).upper()} in {seconds:.1f}s",
        f"    tasks: {len(tis)} ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}): {', '.join(names)}",
        f"    rows: {rows['loaded']} loaded, {rows['rejected']} rejected, {rows['downloaded']} downloaded",
    ]
    if written:
        lines.append(f"    files written ({len(written)}):")
        lines += [f"      {p.relative_to(output_root)} ({p.stat().st_size} bytes)" for p in written]
    else:
        lines.append("    files written: none")
    if not ok:
        failed = [f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id for ti in tis]
        failed = [n for n, ti in zip(failed, tis, strict=True) if str(ti.state) != "success"]
        lines.append(f"    not successful: {', '.join(failed) or '?'}")
        if log_file is not None:
            lines.append(f"    last lines of its log ({log_file}):\n{tail(log_file, LOG_TAIL_LINES)}")
    return ok, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-emulator"]:
        return serve_emulator(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dags", nargs="*", help="DAG files or ids to run (default: every file in example_dags/)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"(default: {DEFAULT_OUTPUT})")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Airflow's and the tasks' logs")
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="seconds to wait for the emulator")
    args = parser.parse_args(argv)

    files = sorted(
        (p for p in EXAMPLE_DAGS.glob("*.py") if not p.name.startswith("_")),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem),
    )
    if args.dags:
        wanted = {Path(d).stem for d in args.dags}
        files = [p for p in files if p.stem in wanted]
        if len(files) != len(wanted):
            print(f"unknown DAG(s): {sorted(wanted - {p.stem for p in files})}", file=sys.stderr)
            return 2
    if not files:
        print(f"no DAG files in {EXAMPLE_DAGS}", file=sys.stderr)
        return 2

    started = time.monotonic()
    airflow_home = prepare_airflow_environment()
    output_root = args.output.resolve()
    shutil.rmtree(output_root, ignore_errors=True)
    output_root.mkdir(parents=True)
    log_dir = None if args.verbose else airflow_home / "example-logs"
    if log_dir is not None:
        log_dir.mkdir()
    results: list[bool] = []
    try:
        emulator = [sys.executable, str(Path(__file__).resolve()), "--serve-emulator", "--port", "0"]
        with running_emulator(args.startup_timeout, command=[*emulator, "--task-duration", TASK_DURATION]) as url:
            os.environ["AIRFLOW_CONN_ANAPLAN_DEFAULT"] = json.dumps(
                {
                    "conn_type": "anaplan",
                    "login": DEFAULT_EMAIL,
                    "password": DEFAULT_PASSWORD,
                    "extra": {"base_url": url, "timeout": 30},
                }
            )
            with output_to(log_dir / "airflow-db.log" if log_dir else None):
                from airflow.utils.db import initdb

                initdb()  # what `airflow db migrate` does, in-process (about 1 s)
            print(f"Airflow metadata DB ready ({airflow_home}); running {len(files)} example DAG(s) with dag.test()\n")
            for path in files:
                ok, summary = run_one(path, output_root, log_dir)
                results.append(ok)
                print(summary, flush=True)
            with output_to(log_dir / "logout.log" if log_dir else None):
                asyncio.run(token_cache.logout_all())  # before the emulator goes (else the exit hook tries)
    except DemoError as exc:
        print(f"examples failed: {exc}", file=sys.stderr)
        return 2
    finally:
        kept = not (results and all(results))
        if not kept:
            shutil.rmtree(airflow_home, ignore_errors=True)

    failed = results.count(False)
    print(
        f"\n{len(results) - failed}/{len(results)} example DAG(s) succeeded in {time.monotonic() - started:.1f}s; "
        f"files under {output_root}"
    )
    if kept:
        print(f"The Airflow home with every DAG's log is kept: {airflow_home}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
