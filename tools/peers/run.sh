#!/usr/bin/env bash
# The peer comparison in one command: hearth against SQLite, DuckDB and chDB on the same
# simulated fleet and the same questions, answers checked equal, a Markdown table printed.
#
#   bash tools/peers/run.sh                                   # 10,000 devices x 365 days
#   bash tools/peers/run.sh --devices 100000 --days 365       # S: about 22 million cycles
#
# Options: --devices N (10000), --days D (365), --queries Q (1000 devices for C1-C3),
# --runs R (hearth's timed runs of each fleet question, 30), --peer-runs R (the peers', 5;
# 3 when one run takes over 2 s, 2 over 20 s),
# --engines sqlite,duckdb,chdb, --sqlite-sync FULL|NORMAL (FULL),
# --sqlite-layout index|clustered (index: a rowid table and an index on (device_id, ts);
# clustered: a WITHOUT ROWID table keyed on it), --dir DIR (default: target/peers-NxD under
# the repository).
# Needs Rust, Python 3 with venv and the system's SQLite library, which rusqlite links (Debian:
# libsqlite3-dev); installs the peers from PyPI into tools/peers/.venv.
# Outside the workspace: nothing here is built by `cargo build` or CI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

devices=10000 days=365 queries=1000 runs=30 peer_runs=5 engines=sqlite,duckdb,chdb sqlite_sync=FULL sqlite_layout=index dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --devices) devices="$2" ;;
        --days) days="$2" ;;
        --queries) queries="$2" ;;
        --runs) runs="$2" ;;
        --peer-runs) peer_runs="$2" ;;
        --engines) engines="$2" ;;
        --sqlite-sync) sqlite_sync="$2" ;;
        --sqlite-layout) sqlite_layout="$2" ;;
        --dir) dir="$2" ;;
        --) shift; break ;;
        *) echo "usage: $0 [--devices N] [--days D] [--queries Q] [--runs R] [--peer-runs R] [--engines LIST] [--sqlite-sync FULL|NORMAL] [--sqlite-layout index|clustered] [--dir DIR]" >&2; exit 2 ;;
    esac
    shift 2
done
# Anything after `--` goes to peers.py (e.g. `-- --reuse-sqlite --no-fleet SQLite`).
dir="${dir:-$root/target/peers-${devices}x${days}}"
mkdir -p "$dir"

venv="$here/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check duckdb==2.0.0 chdb==4.4.0 pyarrow==26.0.1

cargo build --release --quiet --manifest-path "$here/Cargo.toml"
"$here/target/release/hearth-peers" --devices "$devices" --days "$days" \
    --queries "$queries" --runs "$runs" --dir "$dir"

commit="$(git -C "$root" rev-parse --short HEAD)"
git -C "$root" diff --quiet HEAD -- src Cargo.toml || commit="$commit+changes"
"$venv/bin/python" "$here/peers.py" --dir "$dir" --runs "$peer_runs" --engines "$engines" \
    --commit "$commit" --sqlite-sync "$sqlite_sync" --sqlite-layout "$sqlite_layout" --rust-bin "$here/target/release/hearth-peers" "$@"
