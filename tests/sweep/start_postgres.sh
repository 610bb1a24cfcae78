#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the sweep tests and print its URL.
#
#   export GOALBRAKE_TEST_POSTGRES_URL=$(bash tests/sweep/start_postgres.sh)
#   ...run the tests...
#   bash tests/sweep/start_postgres.sh --stop      # stops the last server it started
#   bash tests/sweep/start_postgres.sh --stop "$GOALBRAKE_TEST_POSTGRES_URL"   # that one
#
# The cluster is initdb'ed in a fresh temporary directory owned by the `postgres` system
# user (Debian's postgresql package creates it; run as root) or by the current user when
# not root, listens on 127.0.0.1 only (the first free port from $PGPORT, default 55432;
# trust auth on loopback), and has one database, goalbrake_test. Everything it says goes to
# stderr, except the URL.
set -euo pipefail

# The last server started, and one file per port (several may run: CI beside a developer's).
state=/tmp/goalbrake-test-postgres.dir
if [ "${1:-}" = "--stop" ]; then
  if [ -n "${2:-}" ]; then
    port=${2##*:}
    state=/tmp/goalbrake-test-postgres.${port%%/*}.dir
  fi
  if [ -f "$state" ]; then
    dir=$(cat "$state")
    run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    run "'$bin/pg_ctl' -D '$dir/data' -m fast stop" >&2 || true
    rm -rf "$dir" "$state"
    for f in /tmp/goalbrake-test-postgres.*dir; do  # the other name of the same server
      if [ -f "$f" ] && [ "$(cat "$f")" = "$dir" ]; then rm -f "$f"; fi
    done
  fi
  exit 0
fi

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "start_postgres: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin;" \
       "install them first: apt-get install -y postgresql" >&2
  exit 1
fi
port=${PGPORT:-55432}
# Take the first free port from there (a server from an earlier run may hold it).
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  port=$((port + 1))
done
user=$(id -un)
dir=$(mktemp -d /tmp/goalbrake-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
  user=postgres
  chown postgres: "$dir"
  run() { su postgres -s /bin/sh -c "$*"; }
else
  run() { sh -c "$*"; }
fi
chmod 700 "$dir"
run "'$bin/initdb' -D '$dir/data' -U '$user' -A trust --no-sync -E UTF8" >/dev/null
# Loopback only; the socket lives in the cluster's directory, not /var/run/postgresql.
run "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 \
  -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c max_connections=200 -c fsync=off\" start" >&2
run "'$bin/createdb' -h 127.0.0.1 -p $port -U '$user' goalbrake_test"
echo "$dir" > "$state"
echo "$dir" > "/tmp/goalbrake-test-postgres.$port.dir"
echo "postgresql://$user@127.0.0.1:$port/goalbrake_test"
