# Shared helpers for scripts/test, .ci/run and benches/compare.sh. Source, do not run.
#
# On a Debian or Ubuntu machine they install what the tests need and is missing (apt-get, as
# root or through sudo), start the services that are down and create the roles and databases
# the tests use. Everything they cannot do ends in one line starting with FAILED that names
# the program or service and the package.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OSP_VENV=${OSP_VENV:-$ROOT/.venv-osp}
OSP_PYTHON=${OSPROFILER_PYTHON:-$OSP_VENV/bin/python}
export OSPROFILER_PYTHON=$OSP_PYTHON
# Packages this run installed (scripts/test reports them).
OSP_INSTALLED=${OSP_INSTALLED:-}

# Installs Debian packages with apt-get, as root or through passwordless sudo; otherwise says
# which packages to install.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      echo "FAILED: missing Debian package(s) $* — install them: sudo apt-get install $*" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "FAILED: missing $* and no apt-get here: install the equivalent of the Debian package(s) $*" >&2
    return 1
  fi
  echo "installing $* (apt-get)" >&2
  local t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null 2>&1 \
         && $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; } \
    || { echo "FAILED: apt-get install $* did not succeed" >&2; return 1; }
  echo "installed $* in $((SECONDS - t0)) s" >&2
  OSP_INSTALLED="$OSP_INSTALLED $*"
}

# Installs `package` unless `program` is on the PATH (or is an existing file).
need() {
  local program=$1 package=$2
  if command -v "$program" >/dev/null 2>&1 || [ -x "$program" ]; then
    return 0
  fi
  apt_install "$package"
}

# What building the workspace needs besides the Rust toolchain: a C compiler (bundled SQLite,
# ring) and libpq for diesel's PostgreSQL backend.
ensure_build_tools() {
  # HTTPS for crates.io and PyPI.
  [ -e /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates || return 1
  need cc build-essential || return 1
  need pkg-config pkg-config || return 1
  if ! [ -e /usr/include/postgresql/libpq-fe.h ]; then
    apt_install libpq-dev || return 1
  fi
}

# The Python OSProfiler 4.4.0 oracle, in a virtualenv of its own, with the Redis and MongoDB
# clients and oslo.messaging its redis://, mongodb:// and messaging:// drivers use.
ensure_python_oracle() {
  if [ -x "$OSP_PYTHON" ] && "$OSP_PYTHON" -c 'import importlib.metadata as m, sys, redis, pymongo, oslo_messaging; sys.exit(m.version("osprofiler") != "4.4.0" or m.version("oslo.messaging") != "18.3.1")' 2>/dev/null; then
    return 0
  fi
  need python3 python3 || return 1
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv || return 1
  echo "creating the Python oracle virtualenv in $OSP_VENV (osprofiler==4.4.0)" >&2
  python3 -m venv "$OSP_VENV" || { echo "FAILED: python3 -m venv (the Python oracle needs python3 with venv)" >&2; return 1; }
  "$OSP_VENV/bin/pip" install --quiet --disable-pip-version-check 'osprofiler==4.4.0' redis pymongo 'oslo.messaging==18.3.1' \
    || { echo "FAILED: pip install osprofiler==4.4.0 (the Python oracle)" >&2; return 1; }
}

# Headless Chromium and ChromeDriver (Debian's chromium, chromium-driver) for the HTML report test.
ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return 0
  fi
  apt_install chromium chromium-driver
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

# Runs a command as root (directly, or through passwordless sudo).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# PostgreSQL on 127.0.0.1:5432 with the role postgres reachable without a password over TCP
# and a database `test`. A cluster this script starts (installed here, or installed but not
# running, as on a new machine whose image ships PostgreSQL) gets `trust` for loopback TCP; a
# server that was already running is never reconfigured.
ensure_postgresql() {
  local started_here=""
  if ! port_open 5432; then
    command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql || return 1
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [ -n "$version" ] || { echo "FAILED: PostgreSQL is installed but has no cluster in /etc/postgresql (pg_createcluster)" >&2; return 1; }
    # A machine for these tests: loopback connections need no password.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba" \
      || { echo "FAILED: cannot set trust auth for loopback TCP in $hba" >&2; return 1; }
    echo "starting PostgreSQL $version" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    started_here=yes
  fi
  need psql postgresql-client || return 1
  wait_for "PostgreSQL (127.0.0.1:5432)" 60 pg_isready -h 127.0.0.1 -p 5432 -U postgres || return 1
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1" >/dev/null 2>&1 \
    || { echo "FAILED: PostgreSQL at 127.0.0.1:5432 refuses the role postgres without a password (the tests need trust auth for loopback TCP in pg_hba.conf${started_here:+; this script set it and started the cluster})" >&2; return 1; }
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
}

# MariaDB on 127.0.0.1:3306 with root reachable without a password over TCP and a database
# `test`. A MariaDB this script installs gets that root login.
ensure_mariadb() {
  if ! port_open 3306; then
    local fresh=""
    if ! [ -x /usr/sbin/mariadbd ]; then
      apt_install mariadb-server || return 1
      fresh=yes
    fi
    echo "starting MariaDB" >&2
    as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql || true
    wait_for "MariaDB (its socket)" 60 as_root mariadb -u root -e "SELECT 1" || return 1
    if [ -n "$fresh" ]; then
      # The password first: a client that cannot answer unix_socket over TCP (sqlx) is then
      # asked for mysql_native_password; root keeps its socket login.
      as_root mariadb -u root -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket" \
        || { echo "FAILED: could not let root log in to MariaDB without a password" >&2; return 1; }
    fi
  fi
  need mariadb mariadb-client || return 1
  wait_for "MariaDB (127.0.0.1:3306, root without a password)" 60 mariadb -h 127.0.0.1 -P 3306 -u root -e "SELECT 1" || return 1
  mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test"
}

# Redis on 127.0.0.1:6379 (nothing saved); the same redis-server runs the Sentinel the
# failover test starts.
ensure_redis() {
  need redis-server redis-server || return 1
  need redis-cli redis-tools || return 1
  if ! port_open 6379; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
  wait_for "Redis (127.0.0.1:6379)" 30 redis-cli -h 127.0.0.1 -p 6379 ping
}

# RabbitMQ on 127.0.0.1:5672 (guest/guest, which RabbitMQ allows from loopback).
ensure_rabbitmq() {
  if ! port_open 5672; then
    need rabbitmq-server rabbitmq-server || return 1
    echo "starting RabbitMQ" >&2
    as_root rabbitmq-server -detached || true
  fi
  wait_for "RabbitMQ (127.0.0.1:5672)" 120 port_open 5672
}

# PostgreSQL, MariaDB, Redis and RabbitMQ on their standard local ports: installed when
# missing, started when down.
ensure_services() {
  ensure_postgresql || return 1
  ensure_mariadb || return 1
  ensure_redis || return 1
  ensure_rabbitmq || return 1
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
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv || return 1
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
