"""``codexbro exec``: one headless turn (or a resumed session's next turn), then exit.

Exit codes as upstream: 0 turn completed (even if commands failed), 1 turn failed or bad setup,
2 usage error (argparse). An interrupted turn (Ctrl-C) exits 130, the shell convention.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from codexbro import protocol as p
from codexbro.config.loader import Overrides, load_config
from codexbro.config.types import Config
from codexbro.core.rollout import LoadedRollout, find_rollout, latest_rollout, load_rollout
from codexbro.errors import UserError


class ExecArgs(Struct):
    """``codexbro exec``'s parsed command line."""

    prompt: str | None
    json: bool = False
    model: str | None = None
    sandbox: str | None = None
    cd: str | None = None
    config_overrides: list[str] = field(default_factory=list)
    profile: str | None = None
    skip_git_repo_check: bool = False
    output_last_message: str | None = None
    output_schema: str | None = None
    color: str = "auto"
    ephemeral: bool = False
    full_auto: bool = False
    yolo: bool = False
    oss: bool = False
    local_provider: str | None = None
    images: list[str] = field(default_factory=list)
    enable: list[str] = field(default_factory=list)
    add_dirs: list[str] = field(default_factory=list)
    strict_config: bool = False
    ignore_user_config: bool = False
    ignore_rules: bool = False
    trace: str | None = None
    disable: list[str] = field(default_factory=list)
    # resume / fork
    resume: bool = False
    fork: bool = False
    session_id: str | None = None
    last: bool = False
    all: bool = False
    # exec review: uncommitted | base | commit | custom (the prompt is then the instructions)
    review_kind: str | None = None
    review_value: str = ""


OSS_DEFAULT_MODELS = {
    "ollama": "gpt-oss:20b",
    "lmstudio": "openai/gpt-oss-20b",
    "embedded": "qwen2.5-coder-1.5b",
}


def run_exec(args: ExecArgs) -> int:
    try:
        return asyncio.run(_run(args, _prepare(args)))
    except UserError as err:
        print(f"Error: {err.message}", file=sys.stderr)
        return 1


def _review_label(args: ExecArgs) -> str:
    from codexbro.core.review import ReviewTarget

    return ReviewTarget(args.review_kind or "custom", args.review_value).label()


def _rendered_review(event: p.Event) -> p.Event:
    """A review turn's answer (the model's JSON) as upstream prints it."""
    from codexbro.core.review import render_review
    from codexbro.records import replace

    msg = event.msg
    if isinstance(msg, p.AgentMessage):
        return replace(event, msg=p.AgentMessage(render_review(msg.message)))
    if isinstance(msg, p.TaskComplete) and msg.last_agent_message:
        return replace(event, msg=p.TaskComplete(msg.turn_id, render_review(msg.last_agent_message)))
    return event


def _piped_stdin() -> bool:
    """True when stdin is a pipe or a file (not a terminal, not /dev/null, not closed)."""
    import stat

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _read_prompt(args: ExecArgs) -> str:
    if args.prompt is not None and args.prompt != "-":
        _check_utf8(args.prompt, "the prompt argument")
        # As upstream 0.169: piped input next to a prompt argument is appended as a <stdin> block.
        if _piped_stdin():
            print("Reading additional input from stdin...", file=sys.stderr)
            extra = _read_stdin()
            if extra.strip():
                return f"{args.prompt}\n\n<stdin>\n{extra.rstrip()}\n</stdin>"
        return args.prompt
    if args.prompt is None and sys.stdin.isatty():
        raise UserError("no prompt given: pass it as an argument, or pipe it on stdin with `-`")
    text = _read_stdin()
    if not text.strip():
        raise UserError("the prompt read from stdin is empty")
    return text


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"the input on stdin is not valid UTF-8 (byte {exc.start}): convert it first, e.g. with iconv"
        ) from None


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
        raise UserError(f"{what} is not valid UTF-8: convert it first, e.g. with iconv") from None


def _check_output_file(value: str) -> str:
    """``-o FILE`` is checked before the turn: a last message with nowhere to go is lost work."""
    path = Path(os.path.abspath(Path(value).expanduser()))
    if path.is_dir():
        raise UserError(f"--output-last-message: {path} is a directory; name a file")
    if not path.parent.is_dir():
        raise UserError(f"--output-last-message: the directory {path.parent} does not exist; create it first")
    if _written_through(path):  # /dev/stdout, a FIFO, a link: written as it is, not replaced
        if not os.access(path, os.W_OK):
            raise UserError(f"--output-last-message: cannot write {path} (permission denied)")
        return str(path)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"--output-last-message: cannot create files in {path.parent} (permission denied)")
    return str(path)


def _in_git_repo(path: Path) -> bool:
    from codexbro.core.project_doc import is_git_marker

    return any(is_git_marker(d / ".git") for d in (path, *path.parents))


def _load_schema(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--output-schema: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"--output-schema: {path} is not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"--output-schema: {path} must hold a JSON object (a JSON Schema)")
    return doc


def _written_through(path: Path) -> bool:
    return path.is_symlink() or (path.exists() and not path.is_file())


def write_atomic(path: Path, text: str) -> None:
    """A regular file is replaced atomically; a link, a FIFO or a device (``-o /dev/stdout``) is
    written through, as upstream's plain write does — never replaced by a file."""
    if _written_through(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _flags(args: ExecArgs) -> dict[str, Any]:
    flags: dict[str, Any] = {"model": args.model}
    if args.full_auto:
        flags["sandbox_mode"] = "workspace-write"
    if args.sandbox:
        flags["sandbox_mode"] = args.sandbox
    if args.yolo:
        flags["sandbox_mode"] = "danger-full-access"
    if args.oss:
        provider = args.local_provider or "ollama"
        flags["model_provider"] = provider
        flags.setdefault("model", None)
        if args.model is None:
            flags["model"] = OSS_DEFAULT_MODELS.get(provider)
    from codexbro.config.spec import FEATURES

    unknown = [name for name in (*args.enable, *args.disable) if name not in FEATURES]
    if unknown:
        raise UserError(
            f"unknown feature `{unknown[0]}` (--enable/--disable); known features: {', '.join(sorted(FEATURES))}"
        )
    features = {name: True for name in args.enable} | {name: False for name in args.disable}
    if features:
        flags["features"] = features
    return flags


class Prepared(Struct):
    config: Config
    prompt: str
    inputs: list[p.UserInput]
    schema: dict[str, Any] | None
    resume: LoadedRollout | None
    fork: LoadedRollout | None = None


def _prepare(args: ExecArgs) -> Prepared:
    """Everything that reads files or stdin, done before the event loop starts."""
    from codexbro.logs import setup_file_logging

    cwd = Path(args.cd).expanduser() if args.cd else Path.cwd()
    if not cwd.is_dir():
        raise UserError(f"--cd: {cwd} is not a directory")
    config = load_config(
        Overrides(
            cli_overrides=args.config_overrides,
            profile=args.profile,
            flags=_flags(args),
            command_defaults={"approval_policy": "never"},  # headless: no one is there to approve
            cwd=cwd,
            add_dirs=args.add_dirs,
            strict=args.strict_config,
            ignore_user_config=args.ignore_user_config,
        )
    )
    setup_file_logging(config.codexbro_home)
    trusted = config.raw.get("projects", {}).get(str(config.cwd), {}).get("trust_level") == "trusted"
    if not args.skip_git_repo_check and not trusted and not _in_git_repo(config.cwd):
        raise UserError("Not inside a trusted directory and --skip-git-repo-check was not specified.")
    if args.output_last_message:
        args.output_last_message = _check_output_file(args.output_last_message)
    if args.review_kind is not None and args.review_kind != "custom":
        from codexbro.core.review import ReviewTarget

        prompt = ReviewTarget(args.review_kind, args.review_value).request(config.cwd)
    else:
        prompt = _read_prompt(args)
    if args.review_kind is not None:  # upstream's review guidelines are the first developer message
        from codexbro.core.review import review_config

        config = review_config(config)
    schema = _load_schema(args.output_schema) if args.output_schema else None
    inputs = [p.UserInput("text", text=prompt)]
    for image in (part for value in args.images for part in value.split(",") if part):
        path = Path(image).expanduser()
        if not path.is_file():
            raise UserError(f"--image: {path} does not exist")
        inputs.append(p.UserInput("local_image", path=str(path.resolve())))

    earlier = None
    if args.resume or args.fork:
        if args.session_id:
            rollout_path = find_rollout(config.codexbro_home, args.session_id)
        else:
            rollout_path = latest_rollout(config.codexbro_home, None if args.all else config.cwd)
        earlier = load_rollout(rollout_path)
    if args.fork:
        return Prepared(config, prompt, inputs, schema, None, earlier)
    return Prepared(config, prompt, inputs, schema, earlier)


async def _run(args: ExecArgs, prep: Prepared) -> int:
    from codexbro.composition import SessionOptions, open_session, resolve
    from codexbro.exec.human import HumanProcessor
    from codexbro.exec.jsonl import JsonlProcessor

    config, prompt, inputs, schema, resume = prep.config, prep.prompt, prep.inputs, prep.schema, prep.resume
    resolution = resolve(config, earlier=resume or prep.fork)
    session = open_session(
        resolution,
        SessionOptions(
            ephemeral=args.ephemeral,
            resume=resume,
            fork=prep.fork,
            ignore_rules=args.ignore_rules,
            notice=lambda text: print(f"codexbro: {text}", file=sys.stderr, flush=True),
            subagents=args.review_kind is None,  # a review spawns no agents
        ),
    )
    review = args.review_kind is not None
    if review:
        from codexbro.api.responses_client import ResponsesModelClient

        if isinstance(session.client, ResponsesModelClient):  # as 0.169: no base instructions, tagged
            session.client.base_instructions = ""
            session.client.subagent = "review"
    color = args.color == "always" or (
        args.color == "auto" and sys.stderr.isatty() and "NO_COLOR" not in os.environ
    )
    processor: JsonlProcessor | HumanProcessor
    if args.json:
        processor = JsonlProcessor(lambda line: print(line, flush=True))
    else:
        note = ""
        if config.sandbox_mode == "workspace-write":  # as upstream: the roots beside the mode
            extra = "".join(f", {r}" for r in config.sandbox_workspace_write.writable_roots)
            note = f" [workdir, /tmp, $TMPDIR{extra}]"
        processor = HumanProcessor(
            lambda text: print(text, file=sys.stderr, flush=True),
            lambda text: print(text, flush=True),
            color=color,
            prompt=_review_label(args) if review else prompt,
            sandbox_note=note,
            out_is_terminal=sys.stdout.isatty(),
        )

    tracer = None
    if args.trace:
        from codexbro.exec.trace import Redactor, TraceWriter

        try:
            tracer = TraceWriter(Path(args.trace), Redactor([resolution.auth.token or ""]))
        except OSError as exc:
            await session.close()
            raise UserError(f"--trace: cannot write {args.trace}: {exc.strerror}") from None
        for early in session.drain_events():
            processor.process(early)
            tracer.process(early)

    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os._exit(130)
        session.submit(p.Interrupt())

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    loop.add_signal_handler(signal.SIGTERM, on_sigint)
    aborted = broken_pipe = False
    try:
        session.submit(p.UserTurn(tuple(inputs), schema))
        while True:
            event = await session.next_event()
            if review:
                event = _rendered_review(event)
            if tracer is not None:
                tracer.process(event)
            processor.process(event)
            if isinstance(event.msg, p.TurnAborted):
                aborted = True
                break
            if isinstance(event.msg, p.TaskComplete):
                break
    except BrokenPipeError:
        # The reader went away (`codexbro exec … | head`): stop the turn and leave like a Unix filter
        # killed by SIGPIPE, without a traceback about the closed stream.
        broken_pipe = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(devnull, sys.stderr.fileno())
    finally:
        await session.close()  # still under our signal handlers: a SIGTERM now does not cut it short
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        if not broken_pipe:  # closing ends commands that outlived the turn: report them too
            with contextlib.suppress(BrokenPipeError):
                for event in session.drain_events():
                    if tracer is not None:
                        tracer.process(event)
                    processor.process(event)
                if isinstance(processor, JsonlProcessor):
                    processor.finish()
        if tracer is not None:
            tracer.close()

    if broken_pipe:
        return 141
    if args.output_last_message and processor.last_message is not None:
        try:
            write_atomic(Path(args.output_last_message), processor.last_message)
        except OSError as exc:  # it was writable before the turn; something changed since
            print(f"Error: could not write the last message to {args.output_last_message}: "
                  f"{exc.strerror or exc}", file=sys.stderr)  # fmt: skip
            return 1
    if aborted:
        return 130
    return 1 if processor.turn_error is not None else 0
