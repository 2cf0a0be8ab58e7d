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

# The Python OSProfiler 4.4.0 oracle, in a virtualenv of its own, with the Redis, MongoDB and
# Elasticsearch clients and oslo.messaging its redis://, mongodb://, elasticsearch:// and
# messaging:// drivers use. elasticsearch-py 7.13: OSProfiler 4.4 passes `doc_type` on every
# call, which 8.x removed, and 7.14+ refuses to talk to OpenSearch.
ensure_python_oracle() {
  if [ -x "$OSP_PYTHON" ] && "$OSP_PYTHON" -c 'import importlib.metadata as m, sys, redis, pymongo, oslo_messaging, elasticsearch, sqlalchemy; sys.exit(m.version("osprofiler") != "4.4.0" or m.version("oslo.messaging") != "18.3.1" or m.version("elasticsearch") != "7.13.4" or m.version("SQLAlchemy") != "2.0.44")' 2>/dev/null; then
    return 0
  fi
  need python3 python3 || return 1
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv || return 1
  echo "creating the Python oracle virtualenv in $OSP_VENV (osprofiler==4.4.0)" >&2
  python3 -m venv "$OSP_VENV" || { echo "FAILED: python3 -m venv (the Python oracle needs python3 with venv)" >&2; return 1; }
  "$OSP_VENV/bin/pip" install --quiet --disable-pip-version-check 'osprofiler==4.4.0' redis pymongo 'oslo.messaging==18.3.1' 'elasticsearch==7.13.4' 'SQLAlchemy==2.0.44' \
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

# A single-node OpenSearch 2.19 on 127.0.0.1:9200 for the Elasticsearch/OpenSearch collector's
# tests: a server already answering there is used as is; otherwise scripts/opensearch (OpenSearch
# core with its transport-netty4 and reindex modules, all from Maven Central, started through
# org.opensearch.node.Node) is built with Maven — again only when pom.xml or the launcher changed
# — and started, its data in a temporary directory that goes away when it stops (SIGTERM; the
# pid is in target/opensearch.pid).
# OpenSearch 2.19 on 127.0.0.1:9200 for the elasticsearch:// collector's tests: no Debian, PyPI
# or npm package has it, so scripts/opensearch (a pom.xml and one class) builds a single-node
# server from OpenSearch's jars on Maven Central (core, netty4 HTTP, reindex), data in a temporary
# folder. A server already answering on 9200 is used as is.
ensure_opensearch() {
  need curl curl || return 1
  local url=http://127.0.0.1:9200/
  if curl -sf "$url" >/dev/null 2>&1; then
    return 0
  fi
  if port_open 9200; then
    # The port is taken: an OpenSearch still starting, or some other server.
    wait_for "OpenSearch (127.0.0.1:9200, whose port is taken)" 180 curl -sf "$url"
    return
  fi
  need java default-jdk-headless || return 1
  need mvn maven || return 1
  local dir=$ROOT/scripts/opensearch
  local jar=$dir/target/opensearch-launcher.jar
  mkdir -p "$ROOT/target"
  if ! [ -f "$jar" ] || [ "$dir/pom.xml" -nt "$jar" ] \
     || [ -n "$(find "$dir/src" -type f -newer "$jar" 2>/dev/null | head -n 1)" ]; then
    echo "building the OpenSearch launcher with Maven (the first build downloads ~90 MB from Maven Central)" >&2
    local t0=$SECONDS
    { mvn -q -B -o -f "$dir/pom.xml" package || mvn -q -B -f "$dir/pom.xml" package; } \
      >"$ROOT/target/opensearch-build.log" 2>&1 \
      || { echo "FAILED: mvn package of scripts/opensearch (OpenSearch 2.19 and its modules from Maven Central; see target/opensearch-build.log)" >&2; return 1; }
    # The jar plugin keeps an up-to-date jar as it is: mark this build.
    touch "$jar"
    echo "built the OpenSearch launcher in $((SECONDS - t0)) s" >&2
  fi
  echo "starting OpenSearch on 127.0.0.1:9200" >&2
  setsid nohup java -Xms512m -Xmx1g -jar "$jar" 9200 >"$ROOT/target/opensearch.log" 2>&1 &
  echo $! >"$ROOT/target/opensearch.pid"
  wait_for "OpenSearch (127.0.0.1:9200; its log is target/opensearch.log)" 180 curl -sf "$url"
}

# Jaeger v2 with its spans in memory, for the OTLP exporter's tests: OTLP in on 127.0.0.1:4318
# (HTTP) and 4317 (gRPC), the query API on 127.0.0.1:16686 (/api/traces/<id>, /api/v3/...),
# configured by scripts/jaeger.yaml. Built once from the Go module proxy into
# ${OSP_TOOLS:-~/.cache/osprofiler-rs}/jaeger-<version>/. Jaeger v2.x is published there as
# module version v1.(x+63).0, and `go install module@version` refuses it (its go.mod has a
# replace directive), so it is built with `go install` inside the downloaded module.
# Jaeger v2 (in-memory, scripts/jaeger.yaml) on 127.0.0.1:4318 (OTLP/HTTP) and 16686 (query
# API) for the otlp:// collector's read-back test, built from its Go module. Its go.mod has
# replace directives, which `go install module@version` refuses: the module is downloaded from
# the Go module proxy and installed from the module cache.
ensure_jaeger() {
  local version=v1.76.0 release=v2.13.0 # one Jaeger release, tagged twice
  local module=github.com/jaegertracing/jaeger
  local dir="${OSP_TOOLS:-$HOME/.cache/osprofiler-rs}/jaeger-$version"
  if port_open 16686 && port_open 4318; then
    return 0
  fi
  mkdir -p "$ROOT/target"
  if ! [ -x "$dir/jaeger" ]; then
    need go golang-go || return 1
    echo "installing Jaeger $release (module $module $version; go install, first time several minutes)" >&2
    local t0=$SECONDS src
    mkdir -p "$dir" \
      && (cd "$dir" && go mod download "$module@$version") >"$ROOT/target/jaeger-build.log" 2>&1 \
      && src="$(cd "$dir" && go env GOMODCACHE)/$module@$version" \
      && (cd "$src" && GOBIN="$dir" CGO_ENABLED=0 go install -trimpath \
            -ldflags "-s -w -X $module/internal/version.latestVersion=$release" ./cmd/jaeger) \
         >>"$ROOT/target/jaeger-build.log" 2>&1 \
      && [ -x "$dir/jaeger" ] \
      || { echo "FAILED: could not build Jaeger $release from the Go module proxy ($module@$version ./cmd/jaeger; see $ROOT/target/jaeger-build.log)" >&2; return 1; }
    echo "installed Jaeger $release in $((SECONDS - t0)) s" >&2
    OSP_INSTALLED="$OSP_INSTALLED jaeger-$release"
  fi
  echo "starting Jaeger $release (OTLP 127.0.0.1:4318, query 127.0.0.1:16686)" >&2
  setsid nohup "$dir/jaeger" --config "$ROOT/scripts/jaeger.yaml" >"$ROOT/target/jaeger.log" 2>&1 &
  wait_for "Jaeger (127.0.0.1:16686)" 60 port_open 16686 || return 1
  wait_for "Jaeger OTLP/HTTP (127.0.0.1:4318)" 30 port_open 4318
}
