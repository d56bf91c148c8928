#!/usr/bin/env bash
# Usage: scripts/buf_breaking.sh BUF
#
# Runs `buf breaking` on the working tree's contracts against the `main` branch of this git
# repository, with the rules of buf.yaml (FILE level). When there is nothing to compare against
# (no git repository, no main branch, or main without .proto files yet, as before the first
# commit of the contracts) it says so and exits 0; otherwise its exit code is buf's.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 BUF (the buf executable)" >&2
    exit 2
fi
buf="$1"
# The script changes directory below, so a relative path to buf is made absolute first.
if [[ "$buf" == */* ]]; then
    buf="$(cd "$(dirname "$buf")" && pwd)/$(basename "$buf")"
fi

# buf.yaml lives in the repository folder that holds this script's folder.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "buf breaking: not inside a git repository, nothing to compare against; skipped"
    exit 0
fi
if ! git rev-parse --verify --quiet refs/heads/main >/dev/null; then
    echo "buf breaking: this repository has no main branch, nothing to compare against; skipped"
    exit 0
fi
if [ -z "$(git ls-tree -r --name-only main -- proto | grep '\.proto$' || true)" ]; then
    echo "buf breaking: main has no .proto files yet, nothing to compare against; skipped"
    exit 0
fi

# The common git directory holds the branches (a linked worktree's .git is only a file), and
# subdir points buf at this folder when it is not the top of the repository.
git_dir="$(cd "$(git rev-parse --git-common-dir)" && pwd)"
against="${git_dir}#branch=main"
prefix="$(git rev-parse --show-prefix)"
if [ -n "$prefix" ]; then
    against="${against},subdir=${prefix%/}"
fi
exec "$buf" breaking --against "$against"
