#!/usr/bin/env bash
# A headless Chromium for the MLflow UI's browser test (Debian's package; Playwright drives it,
# so `playwright install` and its download are not needed). Idempotent. Needs root for apt-get
# when Chromium is missing. Prints the browser's path to export:
#   export CNNLAB_TEST_CHROMIUM=$(bash scripts/chromium-for-tests.sh)
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
command -v chromium
