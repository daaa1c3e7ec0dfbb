# Sourced by scripts/egress and scripts/test: makes sure uv and the locked environment exist.
# A fresh machine needs only python3 (3.11+) with pip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v uv >/dev/null 2>&1; then
  if [ -x "$HOME/.local/bin/uv" ]; then
    export PATH="$HOME/.local/bin:$PATH"
  else
    echo "bootstrap: installing uv with pip" >&2
    python3 -m pip install --quiet --user uv >&2 2>/dev/null \
      || python3 -m pip install --quiet --user --break-system-packages uv >&2
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi
uv sync --frozen --quiet >&2
