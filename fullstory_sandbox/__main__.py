"""`python -m fullstory_sandbox [--port 8765] [--flavor live|spec] [--api-key KEY]`: serve a local
FullStory-compatible API until Ctrl-C, to try the command offline (README, "Try it offline")."""

from __future__ import annotations

import argparse
import contextlib
import threading

from .server import FLAVORS, Sandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fullstory_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    # the same default as the pipeline's api_flavor, so the two talk without extra settings
    parser.add_argument("--flavor", choices=FLAVORS, default="live", help="API shape (default live)")
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--events-per-hour", type=int, default=6)
    parser.add_argument("--operation-polls", type=int, default=2)
    parser.add_argument("--link-ttl", type=float, default=300.0)
    parser.add_argument("--workdir", default=None, help="where export files go (default: a temp dir)")
    args = parser.parse_args(argv)
    sandbox = Sandbox(
        api_key=args.api_key,
        flavor=args.flavor,
        events_per_hour=args.events_per_hour,
        operation_polls=args.operation_polls,
        link_ttl=args.link_ttl,
        host=args.host,
        port=args.port,
        workdir=args.workdir,
    )
    with sandbox, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
        print(f"FullStory sandbox ({args.flavor}) at {sandbox.base_url}  (Ctrl-C to stop)", flush=True)
        print(
            "Point the pipeline at it from another shell:\n"
            f"  export SOURCES__FULLSTORY__API_KEY={args.api_key}\n"
            f"  export SOURCES__FULLSTORY__BASE_URL={sandbox.base_url}"
            + ("" if args.flavor == "live" else "\n  export SOURCES__FULLSTORY__API_FLAVOR=spec"),
            flush=True,
        )
        threading.Event().wait()


if __name__ == "__main__":
    main()
