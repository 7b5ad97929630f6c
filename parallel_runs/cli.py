"""`parallel-runs run`: run workflow files on ComfyUI servers, all at once, from a shell.

With several `--server`s the workflows are spread over them: each goes to the server with the
fewest prompts (running, waiting, and given to it by this run), as "Run on: Auto" does.

Exit status 0 when every prompt succeeded, 1 when any failed (one `error: ...` line each),
2 for bad usage. Progress goes to stderr (one line per update without a TTY), results to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .client.connector import Connector, PromptHandle
from .client.errors import ConnectorError, first_line
from .client.process import AttachedServer, ComfyProcess, ComfyStartError
from .client.prompt_run import RunResult
from .client.uploads import rewrite_inputs
from .files import unique_name
from .progress_bars import ProgressBoard


class UsageError(Exception):
    """Bad arguments or unreadable files: reported before anything runs (exit 2)."""


@dataclass
class Job:
    label: str
    path: Path
    document: dict[str, Any]
    handle: PromptHandle | None = None
    server: str | None = None
    error: str | None = None
    result: RunResult | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parallel-runs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run workflows (UI or API format) and save outputs")
    run.add_argument("workflows", nargs="+", type=Path, metavar="WORKFLOW.json")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="a running ComfyUI, e.g. http://127.0.0.1:8188; repeat it to spread the "
        "workflows over several",
    )
    where.add_argument("--start", action="store_true", help="start a ComfyUI for this run")
    run.add_argument(
        "--comfy-dir", type=Path, metavar="DIR", help="ComfyUI to start (default: $COMFYUI_PATH)"
    )
    run.add_argument(
        "--base-directory", type=Path, metavar="DIR", help="ComfyUI --base-directory for --start"
    )
    run.add_argument("--port", type=int, help="port for --start (default: a free one)")
    run.add_argument(
        "--comfy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra ComfyUI argument for --start (write --comfy-arg=--flag)",
    )
    run.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="where output files go"
    )
    run.add_argument("--timeout", type=float, metavar="S", help="seconds each prompt may take")
    run.add_argument(
        "--input",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="upload FILE first; workflow inputs naming it by its file name use the upload",
    )
    run.add_argument("--keep", action="store_true", help="keep uploads and history afterwards")
    run.add_argument("--include-temp", action="store_true", help="also save preview (temp) files")
    return parser


def load_jobs(paths: Sequence[Path]) -> list[Job]:
    jobs: list[Job] = []
    for path in paths:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"{path}: cannot read a JSON workflow: {first_line(error)}") from None
        label = path.stem
        if any(job.label == label for job in jobs):
            label = f"{label}#{len(jobs) + 1}"
        jobs.append(Job(label, path, document))
    return jobs


def check_inputs(paths: Sequence[Path]) -> None:
    for path in paths:
        if not path.is_file():
            raise UsageError(f"--input {path}: no such file")


def start_server(args: argparse.Namespace) -> ComfyProcess:
    comfy_dir = args.comfy_dir or (
        Path(os.environ["COMFYUI_PATH"]) if os.environ.get("COMFYUI_PATH") else None
    )
    if comfy_dir is None or not (comfy_dir / "main.py").is_file():
        raise UsageError(
            "--start needs --comfy-dir DIR (or COMFYUI_PATH) holding ComfyUI's main.py"
        )
    return ComfyProcess(
        comfy_dir=comfy_dir,
        base_directory=args.base_directory,
        port=args.port,
        python=sys.executable,
        extra_args=args.comfy_arg,
        log_path=(args.base_directory or Path(".")) / "comfyui.log",
    )


def save_files(result: RunResult, out: Path) -> list[Path]:
    """Write the result's files into `out` under their bare names, never overwriting."""
    out.mkdir(parents=True, exist_ok=True)
    taken = {name.lower() for name in os.listdir(out)}
    written = []
    for file in result.files:
        target = out / unique_name(file.safe_name, taken, separator="-")
        target.write_bytes(file.data)
        written.append(target)
    return written


async def follow(job: Job, board: ProgressBoard) -> None:
    assert job.handle is not None
    async for _ in job.handle.events():
        board.update(job.label, job.handle.run)
    board.update(job.label, job.handle.run)


async def finish(job: Job, timeout: float | None) -> None:
    assert job.handle is not None
    try:
        job.result = await job.handle.wait(timeout)
    except ConnectorError as error:
        job.error = str(error)


def spread(loads: list[int], count: int) -> list[int]:
    """Which server (by index) each of `count` prompts goes to: the one with the fewest
    prompts so far, the first on a tie; `loads` are their queues when the run starts."""
    loads, chosen = list(loads), []
    for _ in range(count):
        index = min(range(len(loads)), key=loads.__getitem__)
        loads[index] += 1
        chosen.append(index)
    return chosen


async def upload_inputs(connector: Connector, args: argparse.Namespace) -> dict[str, str]:
    """The --input files on one server; workflow value -> the name it stored."""
    names = {}
    ephemeral = connector.input_dir is not None and not args.keep
    for path in args.input:
        upload = await connector.upload(path, ephemeral=ephemeral)
        names[upload.original] = upload.reference
    return names


async def run_jobs(
    jobs: list[Job],
    args: argparse.Namespace,
    servers: Sequence[tuple[str, Path | None]],
    err: TextIO,
) -> None:
    """Upload inputs, queue every workflow (spread over `servers`: url, input folder), follow
    them all, clean up; fills in the jobs."""
    board = ProgressBoard(err)
    types = ("output", "temp") if args.include_temp else ("output",)
    async with contextlib.AsyncExitStack() as stack:
        connectors = [
            await stack.enter_async_context(Connector(url, input_dir=folder, output_types=types))
            for url, folder in servers
        ]
        loads = [sum(map(len, await c.client.queue_ids())) for c in connectors]
        names = [await upload_inputs(c, args) for c in connectors]
        for job, index in zip(jobs, spread(loads, len(jobs)), strict=True):
            connector, job.server = connectors[index], connectors[index].url
            try:
                prompt = rewrite_inputs(await connector.prepare(job.document), names[index])
                job.handle = await connector.submit(prompt, ephemeral=not args.keep)
            except (ConnectorError, ValueError) as error:
                job.error = first_line(error)
        running = [job for job in jobs if job.handle is not None]
        followers = [asyncio.create_task(follow(job, board)) for job in running]
        try:
            await asyncio.gather(*(finish(job, args.timeout) for job in running))
        except asyncio.CancelledError:  # Ctrl-C: do not leave our prompts running
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*(j.handle.cancel() for j in running if not j.handle.done)), 5
                )
            raise
        finally:
            for task in followers:
                task.cancel()
            board.close()
        for connector in connectors:
            try:
                for note in await connector.cleanup():
                    err.write(f"note: {note}\n")
            except ConnectorError as error:
                err.write(f"note: clean-up incomplete: {first_line(error)}\n")


async def run_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Ctrl-C and SIGTERM both cancel this task, so prompts are cancelled, inputs cleaned up
    and a server we started is stopped (SIGTERM alone would skip `atexit`)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    jobs = load_jobs(args.workflows)
    check_inputs(args.input)
    servers: list[ComfyProcess | AttachedServer]
    if args.start:
        started = start_server(args)
        servers = [started]
        try:
            await asyncio.to_thread(started.start, 180)
        except ComfyStartError as error:
            raise ConnectorError(f"{first_line(error)} (log: {started.log_path})") from None
    else:
        servers = [AttachedServer(url) for url in dict.fromkeys(args.server)]
    try:
        await run_jobs(jobs, args, [(s.url, s.input_directory) for s in servers], err)
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
    failed = 0
    for job in jobs:
        if job.result is not None:
            written = save_files(job.result, args.out)
            listing = ", ".join(str(p) for p in written) or "no files"
            where = f" on {job.server}" if len(servers) > 1 else ""
            out.write(f"{job.label}: done{where} in {job.result.elapsed:.1f} s: {listing}\n")
        else:
            failed += 1
            err.write(f"error: {job.label}: {job.error}\n")
    return 1 if failed else 0


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run_command(args, out, err))
    except UsageError as error:
        err.write(f"error: {error}\n")
        return 2
    except ConnectorError as error:
        err.write(f"error: {first_line(error)}\n")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.write("error: interrupted\n")
        return 130
