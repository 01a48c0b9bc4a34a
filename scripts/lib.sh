# Helpers shared by the scripts (sourced, not run).

log() { printf '\033[1m[ferrovec]\033[0m %s\n' "$*" >&2; }

die() { log "error: $*"; exit 1; }

# Makes sure cargo is on PATH (rustup installs it under ~/.cargo/bin).
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"
}

# Creates (or reuses) a Python venv at $1 with the pinned requirements file $2 installed;
# prints the venv path. Reinstalls when the requirements change.
ensure_venv() {
    local venv=$1 req=$2
    command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install -y python3 python3-venv)"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2 || die "cannot create a venv (apt-get install -y python3-venv)"
    fi
    if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 \
            || die "pip could not install $req"
        cp "$req" "$venv/.requirements"
    fi
    echo "$venv"
}
