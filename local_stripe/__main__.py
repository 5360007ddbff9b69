"""``python -m local_stripe --state FILE --port 12111``: serve a state file until interrupted."""

from __future__ import annotations

import argparse
import json
import sys

from local_stripe.server import LocalStripe
from local_stripe.store import StripeState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_stripe",
        description="A local Stripe API (Checkout Sessions and Events, list and retrieve) "
        "serving the objects of a JSON state file. See the local_stripe package docstring "
        "for the file format.")
    parser.add_argument("--state", metavar="FILE",
                        help='JSON file {"checkout_sessions": [...], "events": [...]}; '
                        "omitted: start empty")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=12111, help="port (default %(default)s)")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accept only this key (repeatable); default: any sk_/rk_ key")
    parser.add_argument("--rate-limit", type=int, metavar="N",
                        help="answer 429 beyond N requests per second per endpoint, like Stripe")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    try:
        state = StripeState.from_file(args.state) if args.state else StripeState()
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        print(f"error: cannot load Stripe state from {args.state}: {exc}", file=sys.stderr)
        return 2
    try:
        server = LocalStripe(state, host=args.host, port=args.port, api_keys=args.api_keys,
                             rate_limit=args.rate_limit, verbose=args.verbose)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"local Stripe API on {server.url} with {len(state.checkout_sessions)} Checkout "
          f"Sessions and {len(state.events)} events; use STRIPE_API_BASE={server.url}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
