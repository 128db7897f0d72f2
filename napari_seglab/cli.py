"""The ``seglab`` command line.

``seglab`` with no arguments opens napari on the built-in sample image with the SegLab
widget docked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CLIError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def _open_app(args: argparse.Namespace) -> int:
    import napari

    from napari_seglab._sample_data import coins_image

    viewer = napari.Viewer(title="napari-seglab")
    if args.image:
        viewer.open(args.image)
    else:
        viewer.add_image(coins_image(), name="coins", colormap="gray")
    viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    if args.screenshot:
        # Used by the README: render the whole window once and save it.
        from qtpy.QtWidgets import QApplication

        for _ in range(20):
            QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False)
        viewer.close()
        return 0
    napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``seglab`` command."""
    from napari_seglab import __version__

    parser = argparse.ArgumentParser(
        prog="seglab",
        description="Interactive semantic segmentation from sparse scribbles. "
        "With no command, opens napari with the SegLab widget on a sample image.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(func=_open_app, image=None, screenshot=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    gui = sub.add_parser("gui", help="open napari with the SegLab widget docked")
    gui.add_argument("image", nargs="?", help="image to open (default: the sample image)")
    gui.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and exit")
    gui.set_defaults(func=_open_app)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seglab`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"seglab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seglab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
