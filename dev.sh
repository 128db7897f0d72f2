#!/usr/bin/env bash
# Set-up and entry points for napari-seglab.
#
#   ./dev.sh app    create .venv if needed, install what is missing, open napari with SegLab
#   ./dev.sh test   same set-up plus test tools (and Xvfb/Mesa via apt-get when root), run lint + tests
#
# Both are idempotent: when nothing changed since the last install they start at once.
# Environment: PYTHON (interpreter for the venv, default python3), SEGLAB_VENV (default .venv),
# SEGLAB_QT (pyqt5 or pyqt6, default pyqt5; pyqt6 uses its own venv, .venv-pyqt6).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
QT=${SEGLAB_QT:-pyqt5}
if [ "$QT" = pyqt6 ]; then VENV=${SEGLAB_VENV:-.venv-pyqt6}; else VENV=${SEGLAB_VENV:-.venv}; fi
TORCH_PIN="torch==2.13.0"

die() { echo "dev.sh: $*" >&2; exit 1; }

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo ">> creating virtual environment $VENV"
        "$PYTHON" -m venv "$VENV" || die "could not create a venv with $PYTHON (install python3-venv)"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
}

# install EXTRAS: pip-installs the project with the given extras unless the stamp is up to date.
install_project() {
    local extras=$1 stamp="$VENV/.seglab-stamp-$1"
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        # The CPU build; on a CUDA machine install your own torch build first and it is kept.
        echo ">> installing $TORCH_PIN"
        "$VENV/bin/python" -m pip install -q "$TORCH_PIN"
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo ">> installing napari-seglab[$extras]"
        "$VENV/bin/python" -m pip install -q -e ".[$extras]"
        touch "$stamp"
    fi
}

GL_PACKAGES="xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-icccm4
libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0
libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1"

ensure_display_libs() {
    local missing=()
    for p in $GL_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo ">> installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif ! command -v Xvfb >/dev/null; then
        die "the GUI tests need a virtual display and Mesa OpenGL; install as root:
  apt-get install -y $(echo $GL_PACKAGES)"
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    app)
        ensure_venv
        install_project "all"
        exec "$VENV/bin/seglab" gui "$@"
        ;;
    test)
        ensure_venv
        if [ "$QT" = pyqt6 ]; then
            "$VENV/bin/python" -m pip uninstall -q -y PyQt5 PyQt5-Qt5 PyQt5-sip 2>/dev/null || true
            install_project "pyqt6,testing"
        else
            "$VENV/bin/python" -m pip uninstall -q -y PyQt6 PyQt6-Qt6 PyQt6-sip 2>/dev/null || true
            install_project "all,testing"
        fi
        ensure_display_libs
        echo ">> ruff"
        "$VENV/bin/ruff" check napari_seglab tests benchmarks
        "$VENV/bin/ruff" format --check napari_seglab tests benchmarks
        echo ">> import contracts"
        "$VENV/bin/lint-imports"
        echo ">> pytest"
        # pytest-xvfb starts a virtual display for the GUI tests.
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh app [IMAGE] | ./dev.sh test [PYTEST ARGS]" >&2
        exit 2
        ;;
esac
