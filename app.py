"""The web chat's launcher: parse the flags, build the QA and the page, launch.

`python app.py [--host H] [--port P] [--read-only] [--auth USER:PASSWORD]` (or QA_HOST, QA_PORT,
QA_READ_ONLY, QA_AUTH). The page, its JSON routes and the server's edge live in qa/web/.
"""
from __future__ import annotations

import argparse
import os
import sys

from qa import QA, QAError, Settings
from qa.stores import describe
from qa.web.edge import login_check
from qa.web.page import build_app, is_loopback, launch_options, plural


def _port(raw: str) -> int:
    """A TCP port, from --port or QA_PORT (argparse turns the ValueError into one line and exit 2)."""
    port = int(raw)
    if not 1 <= port <= 65535:
        raise ValueError(raw)
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the web chat over the articles.")
    parser.add_argument("--host", default=os.environ.get("QA_HOST", "127.0.0.1"), help="[default: 127.0.0.1, or QA_HOST]")
    parser.add_argument("--port", type=_port, default=os.environ.get("QA_PORT", "7860"), help="[default: 7860, or QA_PORT]")
    parser.add_argument("--articles", help="articles folder [default: seeds, or QA_ARTICLES]")
    parser.add_argument("--index", help="index folder [default: index, or QA_INDEX]")
    parser.add_argument("--store", help="a postgresql:// URL (or a folder) holding the index [default: QA_STORE, else --index]")
    parser.add_argument("--read-only", action="store_true", default=os.environ.get("QA_READ_ONLY", "") in ("1", "true", "yes"),
                        help="no add/remove controls and no such API [or QA_READ_ONLY=1]")
    parser.add_argument("--auth", default=os.environ.get("QA_AUTH"), metavar="USER:PASSWORD",
                        help="a login page in front of the chat [or QA_AUTH]; required off loopback unless --read-only")
    args = parser.parse_args(argv)

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not (user and sep and password):
            print("error: --auth must be USER:PASSWORD", file=sys.stderr)
            return 2
        auth = login_check({user: password})  # a wrong password waits longer each time in a row
    if auth is None and not args.read_only:
        if not is_loopback(args.host):
            print(f"error: on {args.host} anyone who reaches the app could add and remove articles; "
                  "give --auth USER:PASSWORD (or QA_AUTH), or serve it --read-only", file=sys.stderr)
            return 2
        print("note: anyone who can reach this address (any user or program on this machine) can add and remove "
              "articles; --auth USER:PASSWORD adds a login, --read-only removes those controls", flush=True)

    print("Loading the models and the index…", flush=True)
    try:
        # a chat indexes in a child process at a lower priority, so questions keep their pace (QA_INDEX_WORKER)
        worker = {} if "QA_INDEX_WORKER" in os.environ else {"index_worker": "process"}
        qa = QA(articles=args.articles, index=args.index, settings=Settings.from_env(**worker), store=args.store)
        if qa.last_report is not None:
            print(f"Index {describe(qa.settings)}: {qa.last_report.summary()}", flush=True)
        else:
            print(f"Index {describe(qa.settings)}: loaded as it is (QA_AUTO_UPDATE is off)", flush=True)
        qa.reader.model  # load the reader now: a missing model fails here, not at the first question
    except QAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. an unreadable articles folder
        print(f"error: {err.strerror or err} ({err.filename})", file=sys.stderr)
        return 2
    print(f"{plural(len(qa.articles), 'article')} from {qa.settings.articles}"
          f"{' (read-only)' if args.read_only else ''}", flush=True)
    demo = build_app(qa, read_only=args.read_only)
    # the folder is watched (QA_WATCH) and the feeds polled (QA_FEED_INTERVAL) while the chat runs
    qa.start_background()
    s = qa.settings
    print(f"Watching {s.articles} for changes: {'on' if s.watch else 'off'}; feeds "
          f"{f'polled every {s.feed_interval:g} s from {s.feeds_path}' if s.feed_interval > 0 else 'not polled'}", flush=True)
    try:
        demo.launch(server_name=args.host, server_port=args.port, auth=auth, **launch_options(qa))
    except OSError as err:  # the port is taken, or the address is not this machine's
        print(f"error: cannot serve on {args.host}:{args.port}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    finally:
        qa.stop_background()
    return 0


if __name__ == "__main__":
    sys.exit(main())
