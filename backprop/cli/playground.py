"""``backprop playground``: start the local page's server, open a browser, stop on Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import sys
import webbrowser

from ..errors import ConfigError

DEFAULT_PORT = 8765
MAX_PORT = 65535


def add_parser(commands, int_from) -> None:
    """The ``playground`` command; ``int_from(minimum, what)``: the CLI's integer argument type."""
    what = f"a port number 0..{MAX_PORT} (0: any free one)"
    at_least_0 = int_from(0, what)

    def port_type(text: str) -> int:
        port = at_least_0(text)
        if port > MAX_PORT:  # bind() would raise OverflowError
            raise argparse.ArgumentTypeError(f"must be {what}, got {port}")
        return port

    p = commands.add_parser(
        "playground", help="a local web page that trains a network while you watch",
        description="Start a local web page (TensorFlow Playground's, on this trainer): pick data, "
                    "layers, activation, optimizer and device, press play, watch the loss and the "
                    "decision boundary. Ctrl-C stops it.")
    p.add_argument("data", nargs="?", default=None,
                   help="a .csv/.npz file to offer besides the generated sets (2 feature columns: the "
                        "boundary is drawn; more: a chosen pair)")
    p.add_argument("--target", default=None,
                   help="the file's target column, a name or index, as for backprop train "
                        "(default: the last)")
    p.add_argument("--port", type=port_type, default=None,
                   help=f"port (default {DEFAULT_PORT}, or a free one when it is taken; 0: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; ::1 for IPv6)")
    p.add_argument("--no-browser", action="store_true", help="print the address; open no browser")
    p.add_argument("--from", dest="from_link", default=None, metavar="URL",
                   help="a TensorFlow Playground link: the page starts with its data set, features, network "
                        "and training settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..playground import make_server
    from ..playground.server import LOOPBACK

    if args.host not in LOOPBACK:
        print(f"backprop: warning: listening on {args.host}: anyone who can reach this address can "
              "start training runs on this machine", file=sys.stderr)
    port = DEFAULT_PORT if args.port is None else args.port
    try:
        server = make_server(args.host, port, args.data, args.target)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and args.port is None:
            server = make_server(args.host, 0, args.data, args.target)  # the default is taken: any free port
        elif exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is in use: choose another with --port, or 0 for a free one") \
                from None
        else:
            raise ConfigError(f"cannot listen on {args.host}:{port} ({exc.strerror})") from None
    url = server.url if args.from_link is None else _from_link(args.from_link, server)
    print(f"backprop playground: {url}  (Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        print("\nbackprop playground: stopped", file=sys.stderr)
    finally:
        server.stop_all()
        server.server_close()
    return 0


def _from_link(link: str, server) -> str:
    """The page's address with a TensorFlow Playground link's settings, checked as a page's would
    be; each key of the link that backprop cannot follow is a note on stderr."""
    from ..edges import tfplayground
    from ..playground.session import BadRequest, check_settings, page_address, page_settings

    try:
        setup = tfplayground.read(link)
        settings = page_settings(setup)
        check_settings(settings, server.source)
    except (ConfigError, BadRequest) as exc:
        server.server_close()
        raise ConfigError(f"--from: {exc}") from None
    for note in setup.notes:
        print(f"backprop: note: {note}", file=sys.stderr)
    return page_address(server.url, settings)
