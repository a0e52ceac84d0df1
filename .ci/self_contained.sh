#!/usr/bin/env bash
# Fails if any tracked file reads or cites something outside the repository: the repository is the
# whole world (a user's clone has no folder beside it and no machine-specific tree).
set -euo pipefail
cd "$(dirname "$0")/.."
# Patterns that only an outside reference can match; this file itself is excluded.
pattern='(\.\./shared|/work/|shared/data/real|shared/docs|batch-transform-semantics\.md)'
if git grep -nIE "$pattern" -- . ':!.ci/self_contained.sh'; then
    echo "self-contained check: the lines above point outside the repository; copy what is needed into the repo" >&2
    echo "(tests/fixtures/, sample_data/, docs/) and cite public sources instead" >&2
    exit 1
fi
echo "self-contained check: no tracked file points outside the repository"
