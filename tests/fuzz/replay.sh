#!/usr/bin/env bash
# Every fuzz corpus through its target, without libFuzzer (tests/fuzz/
# replay.c): in the ASan build this is a sanitizer run over each input.
set -euo pipefail
fuzz=$TERN_SRCDIR/tests/fuzz
bin=$TERN_BUILDDIR/tests/fuzz
"$bin/replay-frame" "$fuzz/corpus"
"$bin/replay-container-spec" "$fuzz/corpus-spec"
"$bin/replay-tree" "$fuzz/corpus-tree"
