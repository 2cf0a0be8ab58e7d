# Shared helpers for scripts/test, .ci/run and benches/compare.sh. Source, do not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OSP_VENV=${OSP_VENV:-$ROOT/.venv-osp}
OSP_PYTHON=${OSPROFILER_PYTHON:-$OSP_VENV/bin/python}
export OSPROFILER_PYTHON=$OSP_PYTHON

# The Python OSProfiler 4.4.0 oracle, in a virtualenv of its own, with the Redis and MongoDB
# clients and oslo.messaging its redis://, mongodb:// and messaging:// drivers use.
ensure_python_oracle() {
  if [ -x "$OSP_PYTHON" ] && "$OSP_PYTHON" -c 'import importlib.metadata as m, sys, redis, pymongo, oslo_messaging; sys.exit(m.version("osprofiler") != "4.4.0")' 2>/dev/null; then
    return 0
  fi
  echo "creating the Python oracle virtualenv in $OSP_VENV (osprofiler==4.4.0)" >&2
  python3 -m venv "$OSP_VENV" || { echo "FAILED: python3 -m venv (the Python oracle needs python3 with venv)" >&2; return 1; }
  "$OSP_VENV/bin/pip" install --quiet --disable-pip-version-check 'osprofiler==4.4.0' redis pymongo oslo.messaging \
    || { echo "FAILED: pip install osprofiler==4.4.0 (the Python oracle)" >&2; return 1; }
}

# A MongoDB wire-protocol server on 127.0.0.1:27017 for the mongodb:// collector's tests: a
# MongoDB already there is used as is; otherwise SecantusDB (PyPI, in its own virtualenv
# .venv-secantus) is started, in memory.
SECANTUS_VENV=${SECANTUS_VENV:-$ROOT/.venv-secantus}
ensure_mongodb() {
  if port_open 27017; then
    return 0
  fi
  if ! [ -x "$SECANTUS_VENV/bin/secantusd-py" ]; then
    echo "installing SecantusDB (a MongoDB wire-protocol server) into $SECANTUS_VENV" >&2
    python3 -m venv "$SECANTUS_VENV" \
      && "$SECANTUS_VENV/bin/pip" install --quiet --disable-pip-version-check --pre 'secantusdb==0.7.0b3' \
      || { echo "FAILED: pip install secantusdb==0.7.0b3 (the MongoDB server of the tests)" >&2; return 1; }
  fi
  echo "starting SecantusDB on 127.0.0.1:27017" >&2
  mkdir -p "$ROOT/target"
  setsid nohup "$SECANTUS_VENV/bin/secantusd-py" --host 127.0.0.1 --port 27017 --storage-path :memory: \
    >"$ROOT/target/secantusdb.log" 2>&1 &
  wait_for "MongoDB/SecantusDB (127.0.0.1:27017)" 60 port_open 27017
}

# Headless Chromium and ChromeDriver (Debian's chromium, chromium-driver) for the HTML report test.
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return 0
  fi
  echo "installing chromium and chromium-driver (the HTML report test drives them)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
    || { echo "FAILED: apt-get install chromium chromium-driver (needed by the HTML report test)" >&2; return 1; }
}

# Waits until "$@" succeeds, up to $1 seconds; names the service on failure.
wait_for() {
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 "$secs"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "FAILED: $name did not answer within ${secs}s ($*)" >&2
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL, MariaDB, Redis and RabbitMQ on their standard local ports: started when down.
ensure_services() {
  if ! port_open 5432; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_for "PostgreSQL (127.0.0.1:5432)" 60 pg_isready -h 127.0.0.1 -p 5432 -U postgres
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null

  if ! port_open 3306; then
    echo "starting MariaDB" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  fi
  wait_for "MariaDB (127.0.0.1:3306)" 60 mariadb -h 127.0.0.1 -P 3306 -u root -e "SELECT 1"
  mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test"

  if ! port_open 6379; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
  wait_for "Redis (127.0.0.1:6379)" 30 redis-cli -h 127.0.0.1 -p 6379 ping

  if ! port_open 5672; then
    echo "starting RabbitMQ" >&2
    rabbitmq-server -detached || true
  fi
  wait_for "RabbitMQ (127.0.0.1:5672)" 120 port_open 5672
}
