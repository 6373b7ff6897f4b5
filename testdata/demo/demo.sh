#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL with a sample CRM, the fake Graph API,
# leadtail running on its config, a scripted series of stage changes, and
# the events that reached "Meta" printed. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=testdata/demo
export PATH="$PATH:/usr/local/go/bin"

die() { echo "demo: $*" >&2; exit 1; }
command -v go >/dev/null || die "Go is missing: install Go 1.26+ into /usr/local/go"
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries are missing: sudo apt-get install -y postgresql"
command -v psql >/dev/null || die "psql is missing: sudo apt-get install -y postgresql-client"
command -v curl >/dev/null || die "curl is missing: sudo apt-get install -y curl"

work=$(mktemp -d /tmp/leadtail-demo.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root.
  id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user (apt's postgresql package creates it)"
  chown postgres "$work"
  as_pg=(runuser -u postgres --)
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -f "$work/data/postmaster.pid" ] && "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { # a free loopback port
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port found"
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "building leadtail and the fake Graph API"
go build -o "$work/leadtail" ./cmd/leadtail
go build -o "$work/fakemeta" ./sink/metatest/fakemeta

step "starting a throwaway PostgreSQL (wal_level=logical)"
pgport=$(free_port)
"${as_pg[@]}" "$bindir/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$work'
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4
shared_buffers = 16MB
fsync = off
CONF
"${as_pg[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null
dsn="postgres://postgres@127.0.0.1:$pgport/crm?sslmode=disable"
psql -q -h 127.0.0.1 -p "$pgport" -U postgres -c "CREATE DATABASE crm" postgres
psql -q -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 -f "$here/schema.sql" crm
echo "sample CRM loaded: $(psql -Atq -h 127.0.0.1 -p "$pgport" -U postgres -c 'SELECT count(*) FROM leads' crm) leads"

step "starting the fake Graph API"
metaport=$(free_port)
"$work/fakemeta" -listen "127.0.0.1:$metaport" >"$work/meta.out" 2>"$work/meta.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$metaport/_metatest/requests" >/dev/null && break; sleep 0.1; done

httpport=$(free_port)
export DEMO_HTTP_LISTEN="127.0.0.1:$httpport"
export DEMO_STATE_DIR="$work/state" DEMO_PG_DSN="$dsn" META_ENDPOINT="http://127.0.0.1:$metaport" META_ACCESS_TOKEN=test-token

step "leadtail check"
"$work/leadtail" check -c "$here/leadtail.yaml" || true

step "leadtail run"
"$work/leadtail" run -c "$here/leadtail.yaml" >"$work/leadtail.log" 2>&1 &
lt=$!
pids+=($lt)
for _ in $(seq 300); do
  active=$(psql -Atq -h 127.0.0.1 -p "$pgport" -U postgres -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'leadtail_demo'" crm 2>/dev/null || true)
  [ "$active" = t ] && break
  kill -0 "$lt" 2>/dev/null || { cat "$work/leadtail.log"; die "leadtail exited"; }
  sleep 0.1
done
[ "$active" = t ] || { cat "$work/leadtail.log"; die "leadtail did not start streaming"; }
echo "streaming from slot leadtail_demo"

step "stage changes in the CRM"
stmt=""
while IFS= read -r line; do
  case "$line" in
    "-- step: "*)
      [ -n "$stmt" ] && psql -q -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 -c "$stmt" crm && stmt=""
      echo "  • ${line#-- step: }"; sleep 0.3 ;;
    "") ;;
    *) stmt="$stmt$line"$'\n' ;;
  esac
done <"$here/changes.sql"
[ -n "$stmt" ] && psql -q -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 -c "$stmt" crm

want=6
for _ in $(seq 200); do
  got=$(curl -fs "http://127.0.0.1:$metaport/_metatest/accepted" | grep -c . || true)
  [ "$got" -ge "$want" ] && break
  sleep 0.1
done

step "events that reached \"Meta\" ($got of $want expected)"
curl -fs "http://127.0.0.1:$metaport/_metatest/accepted" | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)["event"]
    u = e["user_data"]
    print("  {:<26} crm_id={:<3} lead_id={}  hashed: {}  event_id={}...".format(
        e["event_name"], e["custom_data"]["crm_id"], u.get("lead_id", "-"),
        ", ".join(k for k in u if k != "lead_id"), e["event_id"][:12]))
' || curl -fs "http://127.0.0.1:$metaport/_metatest/accepted"

step "what an operator sees: /readyz and an excerpt of /metrics"
echo "  /readyz: $(curl -s "http://127.0.0.1:$httpport/readyz")"
curl -fs "http://127.0.0.1:$httpport/metrics" | grep -E '^leadtail_(events_sent_total|changes_skipped_total|changes_total|meta_requests_total|replication_lag_bytes|source_up|dead_letters|commit_to_accepted_seconds_count)' | sed 's/^/  /' || true

step "graceful stop, then leadtail status"
kill -TERM "$lt"; wait "$lt" || true
"$work/leadtail" status -c "$here/leadtail.yaml"
echo
echo "leadtail's log:"; sed 's/^/  /' "$work/leadtail.log" | tail -n 12
[ "$got" -ge "$want" ] || die "only $got of $want events arrived"
echo; echo "demo finished: $got events delivered."
