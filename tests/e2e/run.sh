#!/usr/bin/env bash
# Runs the pymilvus end-to-end suite against a freshly started `ferrovec run standalone`,
# once per client version: pymilvus 3.0 and 2.6 (or only those named as arguments:
# `tests/e2e/run.sh 3` or `tests/e2e/run.sh 2.6`).
#
# Needs the server binary: `cargo build -p ferrovec` (or set FERROVEC_BIN). Each client
# version gets its own virtualenv under $FERROVEC_E2E_VENVS (default /tmp), created from
# requirements-<version>.txt on first use. Extra pytest arguments go in $PYTEST_ARGS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venvs="${FERROVEC_E2E_VENVS:-/tmp}"
versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(3 2.6)

status=0
for v in "${versions[@]}"; do
    req="$here/requirements-$v.txt"
    [ -f "$req" ] || { echo "no $req" >&2; exit 2; }
    venv="$venvs/ferrovec-e2e-pymilvus-$v"
    stamp="$venv/.requirements.sha256"
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "== creating $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet -r "$req"
        echo "$want" > "$stamp"
    fi
    echo "== pymilvus $("$venv/bin/python" -c 'import pymilvus; print(pymilvus.__version__)')"
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pytest "$here" -q ${PYTEST_ARGS:-} || status=1
done
exit $status
