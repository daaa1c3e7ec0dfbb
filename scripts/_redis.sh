# Sourced by scripts/test: a private redis-server on a free loopback port for the fleet tests
# (tests/redis/), its URL in EGRESS_TEST_REDIS_URL, stopped when the script exits. Debian's
# redis-server package is installed when absent. An EGRESS_TEST_REDIS_URL already set is used as is.
if [ -z "${EGRESS_TEST_REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "scripts/test: installing redis-server with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      redis-server >&2
  fi
  EGRESS_REDIS_DIR="$(mktemp -d)"
  EGRESS_REDIS_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  redis-server --port "$EGRESS_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$EGRESS_REDIS_DIR" >"$EGRESS_REDIS_DIR/redis.log" 2>&1 &
  EGRESS_REDIS_PID=$!
  _egress_stop_redis() {
    kill "$EGRESS_REDIS_PID" 2>/dev/null || true
    wait "$EGRESS_REDIS_PID" 2>/dev/null || true
    rm -rf "$EGRESS_REDIS_DIR"
  }
  trap _egress_stop_redis EXIT
  for _ in $(seq 200); do
    redis-cli -p "$EGRESS_REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$EGRESS_REDIS_PORT" ping >/dev/null \
    || { echo "scripts/test: redis-server did not start" >&2; cat "$EGRESS_REDIS_DIR/redis.log" >&2; exit 1; }
  export EGRESS_TEST_REDIS_URL="redis://127.0.0.1:$EGRESS_REDIS_PORT/0"
fi
