# shellcheck shell=bash
# Shared install logic for scripts/demo and scripts/test. Source it; do not run it.
#
# One venv per supported Airflow version, .venvs/airflow-<version>, each pinned by the committed
# constraints/airflow-<version>.txt. A stamp file in the venv holds a hash of everything the install
# depends on, so an up-to-date venv costs nothing; anything else (missing, broken or stale venv)
# is (re)installed with uv. uv comes from PATH, else from .venvs/tools (bootstrapped with pip).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUPPORTED_AIRFLOW_VERSIONS=(3.3.2 3.1.8)   # newest first; the last one is the floor
# shellcheck disable=SC2034  # used by the scripts that source this file
DEFAULT_AIRFLOW_VERSION=3.3.2        # what scripts/demo uses

# uv must use the machine's python3, never download an interpreter.
export UV_PYTHON_DOWNLOADS=never

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# venv_dir VERSION -> path of that version's venv
venv_dir() { printf '%s/.venvs/airflow-%s' "$REPO_ROOT" "$1"; }

# constraints_file VERSION -> path of that version's committed constraints file
constraints_file() { printf '%s/constraints/airflow-%s.txt' "$REPO_ROOT" "$1"; }

is_supported_version() {
    local v
    for v in "${SUPPORTED_AIRFLOW_VERSIONS[@]}"; do [[ "$v" == "$1" ]] && return 0; done
    return 1
}

# ensure_uv: set UV to a working uv binary.
ensure_uv() {
    [[ -n "${UV:-}" ]] && return 0
    if command -v uv >/dev/null 2>&1; then
        UV="$(command -v uv)"
        return 0
    fi
    local tools="$REPO_ROOT/.venvs/tools"
    if ! "$tools/bin/uv" --version >/dev/null 2>&1; then
        log "bootstrapping uv into .venvs/tools (python3 -m venv + pip install uv)"
        python3 -m venv --clear "$tools" || die "python3 -m venv failed"
        # The machine-wide pip.conf may print many harmless warnings; show them only if pip fails.
        local out
        if ! out="$("$tools/bin/pip" install -q --disable-pip-version-check uv 2>&1)"; then
            printf '%s\n' "$out" >&2
            die "could not install uv with pip"
        fi
    fi
    UV="$tools/bin/uv"
}

# install_hash VERSION -> hash of every input of that venv's install
install_hash() {
    {
        printf 'airflow=%s\n' "$1"
        python3 --version 2>&1
        cat "$REPO_ROOT/pyproject.toml" "$(constraints_file "$1")" "$REPO_ROOT/scripts/_env.sh"
    } | sha256sum | cut -d' ' -f1
}

# ensure_venv VERSION: make .venvs/airflow-VERSION match pyproject.toml + its constraints file.
ensure_venv() {
    local version="$1" venv constraints stamp want
    is_supported_version "$version" || die "unsupported Airflow version '$version' (supported: ${SUPPORTED_AIRFLOW_VERSIONS[*]})"
    venv="$(venv_dir "$version")"
    constraints="$(constraints_file "$version")"
    stamp="$venv/.install-stamp"
    [[ -f "$constraints" ]] || die "missing $constraints (run scripts/compile-constraints)"
    want="$(install_hash "$version")"

    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        return 0
    fi

    ensure_uv || return 1
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        log "creating .venvs/airflow-$version ($(python3 --version 2>&1))"
        "$UV" venv --quiet --clear -p python3 "$venv" || die "uv venv failed"
    fi
    log "installing airflow-provider-anaplan[test] + apache-airflow==$version into .venvs/airflow-$version"
    rm -f "$stamp"
    local out
    # uv lists every package it touches; keep its summary lines, and show everything if it fails.
    if ! out="$(cd "$REPO_ROOT" && "$UV" pip install --compile-bytecode -p "$venv/bin/python" \
        -c "constraints/airflow-$version.txt" \
        --reinstall-package airflow-provider-anaplan \
        -e '.[test]' "apache-airflow==$version" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "install into .venvs/airflow-$version failed"
    fi
    printf '%s\n' "$out" | grep -vE '^ [-+~] ' | sed 's/^/    /' >&2 || true
    printf '%s\n' "$want" >"$stamp"
}
