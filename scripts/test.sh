#!/usr/bin/env bash
# Run every mdhub test on this machine, installing what the tests need first.
# Idempotent: a second run reuses .venv and the cargo build. Fails loudly when
# something the tests need cannot be installed — a missing dependency is never
# a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not installed (install Rust with rustup, then rerun)"
command -v python3 >/dev/null || die "python3 is not installed (apt-get install -y python3 python3-venv)"
# Debian packages: openssl makes test certificates, socat puts a TLS front on
# the test broker, redis-server runs a second Redis the tests stop and start,
# nats-server is the peer of `mdhub bench fanout --peer nats`.
for pkg in openssl:openssl socat:socat redis-server:redis-server nats-server:nats-server; do
  cmd=${pkg%%:*}
  if ! command -v "$cmd" >/dev/null; then
    say "installing ${pkg#*:} (Debian)"
    { apt-get update -qq && apt-get install -y -qq "${pkg#*:}"; } >/dev/null 2>&1 \
      || die "$cmd is not installed and apt-get could not install ${pkg#*:}"
  fi
done

say "Python test dependencies (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || die "cannot create .venv (apt-get install -y python3-venv)"
fi
if ! .venv/bin/python - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {}
for line in open("scripts/requirements-test.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, ver = line.split("==")
        want[name.split("[")[0]] = ver
sys.exit(0 if all(m.version(n) == v for n, v in want.items()) else 1)
PY
then
  # quickfix has no wheel on PyPI: pip compiles its C++ (a large SWIG wrapper)
  # once and caches the wheel. Unoptimized, that takes minutes, not most of an hour.
  echo "installing scripts/requirements-test.txt (quickfix compiles from source the first time)"
  CFLAGS="-O0 -g0" CXXFLAGS="-O0 -g0" \
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt \
    || die "pip could not install scripts/requirements-test.txt"
fi
export MDHUB_TEST_PYTHON="$root/.venv/bin/python"
"$MDHUB_TEST_PYTHON" -c "import fastavro, jsonschema, kafka, lz4, quickfix, pyarrow, duckdb, moto, boto3, websockets" || die "python test modules missing after install"

say "Kafka-protocol broker (tansu)"
export PATH="$HOME/.cargo/bin:$PATH"
# dynostore: the memory:// engine. cargo records an install's features.
tansu_ok() {
  command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "0.6.0" &&
    python3 - "$HOME/.cargo/.crates2.json" <<'PY'
import json, sys
installs = json.load(open(sys.argv[1]))["installs"]
sys.exit(0 if any(k.startswith("tansu 0.6.0 ") and {"dynostore"} <= set(v.get("features", []))
                  for k, v in installs.items()) else 1)
PY
}
if ! tansu_ok; then
  echo "installing tansu 0.6.0 from crates.io (first time only; about 30 minutes on 2 cores)"
  cargo install tansu --version 0.6.0 --locked --features dynostore \
    || die "cargo install tansu failed: the Kafka tests need a real broker"
fi
export MDHUB_TEST_TANSU
MDHUB_TEST_TANSU=$(command -v tansu)
free_port() { "$MDHUB_TEST_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kport=$(free_port)
mkdir -p target
tansu broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ > target/tansu.log 2>&1 &
tansu_pid=$!
out=$(mktemp)
trap 'rm -f "$out"; kill "$tansu_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null; then break; fi
  kill -0 "$tansu_pid" 2>/dev/null || die "tansu exited at start: $(tail -5 target/tansu.log)"
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null || die "tansu does not accept connections on 127.0.0.1:$kport"
export MDHUB_TEST_KAFKA="127.0.0.1:$kport"
echo "tansu on $MDHUB_TEST_KAFKA (log: target/tansu.log)"

say "Redis"
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile "$root/target/redis.log" || die "redis-server would not start"
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
fi
redis_up || die "Redis does not answer on 127.0.0.1:6379: the cache tests need it"
export MDHUB_TEST_REDIS="redis://127.0.0.1:6379"
echo "Redis on $MDHUB_TEST_REDIS"

say "PostgreSQL"
# The hot-tier tests write to the machine's PostgreSQL (trust auth, database
# test); MDHUB_TEST_DATABASE_URL points them elsewhere.
export MDHUB_TEST_DATABASE_URL="${MDHUB_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v psql >/dev/null || die "psql is not installed (apt-get install -y postgresql-client): the hot-tier tests use it"
psql -X -q -t "$MDHUB_TEST_DATABASE_URL" -c 'SELECT 1' >/dev/null 2>&1 \
  || die "PostgreSQL does not answer at $MDHUB_TEST_DATABASE_URL: the hot-tier tests need it"
echo "PostgreSQL at $MDHUB_TEST_DATABASE_URL"

say "Browser tests: Node.js, Chromium, playwright-core (tests/web)"
# The web UI's tests (crates/mdhub/tests/web.rs) drive Debian's Chromium
# with playwright-core from npm; playwright never downloads a browser here.
command -v node >/dev/null && command -v npm >/dev/null \
  || die "node and npm are not installed: the web UI tests need Node.js 20+"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] \
  || die "Node.js $(node --version) is too old: the web UI tests need 20+"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    </dev/null >/dev/null 2>&1 || die "chromium is not installed and apt-get could not install it"
fi
export MDHUB_TEST_CHROMIUM=/usr/bin/chromium
"$MDHUB_TEST_CHROMIUM" --headless --no-sandbox --version >/dev/null 2>&1 || die "$MDHUB_TEST_CHROMIUM does not run"
# npm ci again only when the lock file differs from the one last installed.
stamp=tests/web/node_modules/.mdhub-installed-lock.json
if ! cmp -s tests/web/package-lock.json "$stamp"; then
  (cd tests/web && npm ci --no-audit --no-fund --loglevel=error </dev/null) \
    || die "npm ci in tests/web failed: the web UI tests need playwright-core"
  cp tests/web/package-lock.json "$stamp"
fi
export MDHUB_TEST_NODE
MDHUB_TEST_NODE=$(command -v node)
echo "node $(node --version), $("$MDHUB_TEST_CHROMIUM" --version 2>/dev/null), playwright-core in tests/web/node_modules"

say "lint: rustfmt and clippy (warnings are errors)"
cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 \
  || die "rustfmt and clippy are not installed (rustup component add rustfmt clippy)"
cargo fmt --all --check || die "cargo fmt --all --check: run cargo fmt --all"
cargo clippy --workspace --all-targets --locked -- -D warnings || die "clippy found problems (above)"

say "cargo test (workspace, all targets)"
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee -a "$out"
say "cargo test (doc tests)"
cargo test --workspace --doc --locked --no-fail-fast 2>&1 | tee -a "$out"
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$out"
