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
