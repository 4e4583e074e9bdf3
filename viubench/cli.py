"""`viubench build | verify | eval | score | leaderboard | compare | analyze | watch | export |
import | merge | list | demo`."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import warnings
from typing import Sequence

from . import __version__

DEFAULT_DEMO_OUT = "viubench-demo"


class _DefaultsFormatter(argparse.HelpFormatter):
    """`--help` that states every option's default (when it has one worth saying)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" not in text and _worth_saying(action):
            text = f"{text} (default: %(default)s)"
        return text


def _worth_saying(action: argparse.Action) -> bool:
    default = action.default
    return bool(action.option_strings) and not (
        default is None or default is False or default == [] or default is argparse.SUPPRESS)


def _with_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every sub-command's `--help` states the defaults, also of options with no help text."""
    parser.formatter_class = _DefaultsFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _with_defaults(command)
        elif not action.help and _worth_saying(action):
            action.help = "default: %(default)s"
    return parser


def _build_parser() -> argparse.ArgumentParser:
    return _with_defaults(_parser())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="viubench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"viubench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build a test set from a folder of videos")
    build.add_argument("--videos", required=True, help="folder of source videos (read only)")
    build.add_argument("--out", required=True, help="test-set folder (resumes if it exists)")
    _add_build_options(build)
    build.add_argument("--limit", type=int, help="use only the first N files (sorted by path)")

    verify = commands.add_parser("verify", help="re-derive every answer from the source videos")
    verify.add_argument("testset")
    verify.add_argument("--videos", help="where the source videos are now (default: as built)")
    verify.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                        help="a user task the test set uses (never imported from the test set)")

    _add_eval_parser(commands)
    score = commands.add_parser("score", help="score a run folder: scores.jsonl, results.json")
    score.add_argument("rundir")
    score.add_argument("--testset", help="where the test set is now (default: as recorded)")
    score.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                       help="a user task the test set uses (never imported from the test set)")

    from .cli_export import add_parser as add_export_parser
    from .cli_import import add_parser as add_import_parser
    from .cli_report import add_parsers
    from .cli_merge import add_parser as add_merge_parser
    from .cli_watch import add_parser as add_watch_parser

    add_parsers(commands)
    add_watch_parser(commands)
    add_merge_parser(commands)
    add_export_parser(commands)
    add_import_parser(commands)

    listing = commands.add_parser("list", help="show tasks, variants, suites or adapters")
    listing.add_argument("what", nargs="?", default="tasks",
                         choices=["tasks", "suites", "adapters"])
    listing.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR")
    listing.add_argument("--adapter-module", action="append", default=[], metavar="MODULE")

    demo = commands.add_parser("demo", help="build and verify a small VIUBench from bundled clips")
    demo.add_argument("--out", default=DEFAULT_DEMO_OUT)
    demo.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    return parser


def _add_eval_parser(commands) -> None:
    from .cli_options import add_model_options, add_run_options, add_shard_option

    run = commands.add_parser("eval", help="ask a model every sample of a test set, then score")
    run.add_argument("--testset", required=True)
    run.add_argument("--model", required=True, metavar="SPEC",
                     help="adapter[:target] [key=value ...], e.g. openai:gpt-4o, hf:/ckpt,"
                          " vllm:/ckpt, random, constant text=1,1,1, blind:SPEC,"
                          " package.module:Class")
    add_model_options(run)
    run.add_argument("--out", help="run folder (resumes if it exists; default runs/<model>)")
    add_run_options(run)
    add_shard_option(run)
    errors = run.add_mutually_exclusive_group()
    errors.add_argument("--keep-errors", action="store_true",
                        help="on a rerun, do not ask again the samples whose last answer was"
                             " an error (by default they are asked again)")
    errors.add_argument("--retry-errors", action="store_true",
                        help="the default; still accepted so that older scripts keep working")
    run.add_argument("--max-error-rate", type=float, default=0.0, metavar="FRACTION",
                     help="exit with status 1 when more than this share of the samples in"
                          " scope ends with an error")
    run.add_argument("--no-score", action="store_true", help="only collect predictions")


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    from .recipes import RECIPES

    parser.add_argument("--suite", help="viubench (default), all, or a suite a task declares")
    parser.add_argument("--tasks", nargs="+", default=[], metavar="TASK[:VARIANT]",
                        help="keep only these tasks / variants of the suite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-video", type=int, metavar="N",
                        help="samples per variant per video (default 1); with --recipe, the"
                             " most samples of one variant drawn from one video (default 4)")
    parser.add_argument("--decoder", default="pyav", choices=["pyav", "decord", "auto"],
                        help="pyav reads everything; decord only H.264/HEVC/VP9; auto picks"
                             " decord where it is correct and falls back to PyAV for any file"
                             " decord fails on. The backend is recorded per sample.")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: --workers processes on this machine; ray: one"
                             " task per video on a Ray cluster, as many at once as it has CPUs"
                             " (needs the ray extra; the videos, and --out unless --pack is"
                             " given, on storage every node sees at the same path)")
    parser.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster to use, e.g. HEAD:6379 or auto (default: RAY_ADDRESS,"
                             " else a cluster `ray start` began on this machine, else a new"
                             " local one for this build)")
    parser.add_argument("--pack", type=int, default=0, metavar="N",
                        help="store the frames in ZIP packs of N videos each"
                             " (media/packs/pack-NNNNN.zip) instead of one JPEG file per frame:"
                             " for large builds; read alike by every command (default 0: files)")
    parser.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                        help="load an extra task from user code")
    parser.add_argument("--max-pixels", type=int, metavar="AREA",
                        help="largest stored frame area, aspect kept (default 262144 = 512x512,"
                             " the paper's VIUBench setting; with --for-training 65536 ="
                             " 256x256, the papers' training setting)")
    training = parser.add_argument_group("training sets")
    training.add_argument("--recipe", choices=sorted(RECIPES),
                          help="a training mix of per-variant quotas, dealt over the videos,"
                               " instead of --suite/--tasks: videossr30k (VideoSSR-30K's mix)"
                               " or mvp (ours)")
    training.add_argument("--samples", type=int, metavar="N",
                          help="scale the recipe to N samples in all, proportions kept"
                               " (default: the recipe's own size)")
    training.add_argument("--for-training", action="store_true",
                          help="a training set: frames at the training resolution (--max-pixels"
                               " 65536 unless given) and build.json purpose \"training\"")
    training.add_argument("--exclude-testset", action="append", default=[], metavar="DIR",
                          help="never use a video whose content is in the test set DIR"
                               " (repeatable); each one is recorded as skipped, naming DIR")


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build
    from .progress import VideoProgress

    spec = _build_spec(args)
    with VideoProgress(args.out) as progress:
        summary = build(spec, args.out, args.limit, args.workers, observer=progress,
                        executor=args.executor, address=args.address, pack=args.pack)
    _print_build_summary(args.out, summary)
    return 0


def _build_spec(args: argparse.Namespace):
    """The BuildSpec the build options describe (ValueError for options that conflict)."""
    from .build import BuildSpec
    from .leakage import video_hashes
    from .recipes import DEFAULT_PER_VIDEO, recipe_named, scaled
    from .registry import load_tasks, select

    tasks = load_tasks(args.task_module)
    quotas: tuple[tuple[str, str, int], ...] = ()
    if args.recipe:
        if args.suite or args.tasks:
            raise ValueError("--recipe chooses the variants; leave out --suite and --tasks")
        recipe = recipe_named(args.recipe)
        quotas = scaled(recipe.quotas, args.samples or recipe.size)
        selection = tuple((task, variant) for task, variant, _ in recipe.quotas)
        select(tasks, "all", [f"{task}:{variant}" for task, variant in selection])
    elif args.samples is not None:
        raise ValueError("--samples scales a recipe; give --recipe too")
    else:
        selection = tuple(select(tasks, args.suite, args.tasks))
    per_video = args.per_video if args.per_video is not None else (
        DEFAULT_PER_VIDEO if quotas else 1)
    max_pixels = args.max_pixels if args.max_pixels is not None else (
        256 * 256 if args.for_training else 512 * 512)
    exclude = sorted({(content, os.path.abspath(folder), path)
                      for folder in args.exclude_testset
                      for content, path in video_hashes(folder).items()})
    return BuildSpec(os.path.abspath(args.videos), selection, args.seed, per_video,
                     args.decoder, tuple(args.task_module), max_pixels,
                     purpose="training" if args.for_training else "benchmark",
                     recipe=args.recipe or "", quotas=quotas, exclude=tuple(exclude))


def _print_build_summary(out: str, summary: dict) -> None:
    videos = summary["videos"]
    purpose = " (a training set)" if summary.get("purpose") == "training" else ""
    print(f"{out}: {summary['samples']} samples from {videos['ok']} videos"
          f" ({videos['skipped']} skipped){purpose}")
    for key, entry in summary["variants"].items():
        print(f"  {key}: {_variant_line(entry)}")
    for skipped in summary["skipped"]:
        print(f"  skipped {skipped['path']}: {skipped['reason']}")
    if "leakage" in summary:
        leakage = summary["leakage"]
        print(f"  excluded for leakage: {leakage['excluded']} videos (their content is in"
              f" {', '.join(leakage['testsets'])})")
    if "quotas" in summary:
        _print_shortfall(summary["quotas"])


def _print_shortfall(quotas: dict) -> None:
    """One line when the recipe was met, else one naming every variant short of its quota."""
    if not quotas["short"]:
        print(f"  recipe {quotas['recipe']}: all {quotas['wanted']} samples made")
        return
    short = [f"{key} {entry['made']} of {entry['wanted']}"
             for key, entry in quotas["variants"].items() if entry["made"] < entry["wanted"]]
    print(f"  SHORTFALL: {quotas['short']} of the {quotas['wanted']} samples of recipe"
          f" {quotas['recipe']} could not be made from this folder ({'; '.join(short)}):"
          " add videos, or raise --per-video (the most samples of one variant per video)")


CONSOLE_REASONS = 3     # skip-reason groups shown per variant (build.json keeps more)
REASON_WIDTH = 60       # characters of a reason group's text shown on the console


def _variant_line(entry: dict) -> str:
    """`N samples from V of T videos (K not loaded); S skipped: reason (n), ...` for one
    variant of build.json's `variants` (T counts every processed video)."""
    total = entry["videos"] + entry["videos_not_loaded"]
    line = f"{entry['samples']} samples from {entry['videos_with_samples']} of {total} videos"
    if entry["videos_not_loaded"]:
        line += f" ({entry['videos_not_loaded']} not loaded)"
    if entry["skipped"]:
        shown = [f"{textwrap.shorten(group['reason'], REASON_WIDTH, placeholder=' ...')}"
                 f" ({group['count']})" for group in entry["skip_reasons"][:CONSOLE_REASONS]]
        line += f"; {entry['skipped']} skipped: " + ", ".join(shown)
    return line


def cmd_verify(args: argparse.Namespace) -> int:
    from .progress import SampleProgress
    from .testset import iter_samples
    from .verify import verify

    with SampleProgress(args.testset) as progress:
        progress.start(sum(1 for _ in iter_samples(args.testset)), 0)
        result = verify(args.testset, args.videos, on_sample=progress.update,
                        task_modules=args.task_module)
    for problem in result.problems:
        print(problem, file=sys.stderr)
    state = "OK" if result.ok else f"FAILED ({len(result.problems)} problems)"
    print(f"{args.testset}: verified {result.checked} samples from {result.videos} videos: {state}")
    return 0 if result.ok else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from .cli_eval import eval_command

    return eval_command(args)


def cmd_score(args: argparse.Namespace) -> int:
    from .score import format_results, score_run

    results = score_run(args.rundir, args.testset, args.task_module)
    print(format_results(results))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import load_tasks, suites

    if args.what == "adapters":
        from .adapters import available_adapters, describe_adapter

        for name, cls in sorted(available_adapters(args.adapter_module).items()):
            print(f"{name:10s} {describe_adapter(cls)}")
        return 0
    tasks = load_tasks(args.task_module)
    if args.what == "suites":
        for name, items in suites(tasks).items():
            print(f"{name} ({len(items)}): " + ", ".join(f"{t}:{v}" for t, v in items))
        return 0
    for task in tasks.values():
        print(f"{task.name} (version {task.version})")
        for name, variant in task.variants.items():
            print(f"  {name:14s} {variant.difficulty:9s} {variant.description}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.workers)


def cmd_report(args: argparse.Namespace) -> int:
    from . import cli_report

    handler = {"leaderboard": cli_report.leaderboard_command, "compare": cli_report.compare_command,
               "analyze": cli_report.analyze_command}[args.command]
    return handler(args)


COMMANDS = {"build": cmd_build, "verify": cmd_verify, "eval": cmd_eval, "score": cmd_score,
            "leaderboard": cmd_report, "compare": cmd_report, "analyze": cmd_report,
            "list": cmd_list, "demo": cmd_demo}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the console as one line each, without Python's source excerpt."""
    print(f"viubench: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
        # about the closed stdout when it flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ValueError as error:
        print(f"viubench {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:   # a full disk, a permission, a missing file: one line, no trace
        print(f"viubench {args.command}: error: {_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"viubench {args.command}: interrupted (build and eval resume where they stopped"
              " when run again)", file=sys.stderr)
        return 130


def _os_error(error: OSError) -> str:
    """An OSError in words: the file (when known), then the system's reason."""
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
