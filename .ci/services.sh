#!/usr/bin/env bash
# Makes sure the services that the development and test runs use are up:
#   PostgreSQL on 127.0.0.1:5432 (role "postgres", no password, pg_trgm available)
#   Redis      on 127.0.0.1:6379
# and that promtool and prometheus are installed (the alert rule and dashboard
# tests run them; nothing is left running), Chromium (the web UI tests
# drive it headless), and rsyslogd and logger (the syslog tests send with them).
#
# For each one: if it already answers, nothing is done; if it is installed, it
# is started; if it is missing and this runs as root on Debian/Ubuntu, it is
# installed with apt-get and started. Otherwise the script says what to do and
# exits 1 (unless LOGENGINE_POSTGRES_URL / LOGENGINE_REDIS_ADDR point elsewhere).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
PG_DB=logengine
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
WAIT_SECONDS=30

APT_UPDATED=0
PG_FRESH=0
FAILED=0

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
can_apt() { is_root && have apt-get; }

# tcp_open HOST PORT: true when something accepts a TCP connection there.
tcp_open() {
	if have timeout; then
		timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
	else
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
	fi
}

# wait_for NAME CHECK: polls CHECK once a second for up to WAIT_SECONDS.
wait_for() {
	local name=$1 check=$2 i
	for ((i = 0; i < WAIT_SECONDS; i++)); do
		if "$check"; then
			return 0
		fi
		sleep 1
	done
	warn "$name: did not answer within ${WAIT_SECONDS}s"
	return 1
}

apt_install() {
	if [ "$APT_UPDATED" -eq 0 ]; then
		say "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
		APT_UPDATED=1
	fi
	say "apt-get install -y $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------- PostgreSQL

pg_up() {
	if have pg_isready; then
		pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3 >/dev/null 2>&1
	else
		tcp_open "$PG_HOST" "$PG_PORT"
	fi
}

# Debian-style clusters: /etc/postgresql/<version>/main
pg_versions() {
	local dir
	for dir in /etc/postgresql/*/main; do
		[ -d "$dir" ] || continue
		basename "$(dirname "$dir")"
	done
}

pg_installed() {
	[ -n "$(pg_versions)" ] || [ -x /etc/init.d/postgresql ] || have postgres
}

pg_start() {
	local v started=1
	if have pg_ctlcluster; then
		for v in $(pg_versions); do
			say "postgres: starting cluster $v/main"
			if pg_ctlcluster --skip-systemctl-redirect "$v" main start; then
				started=0
			fi
		done
	fi
	if [ "$started" -ne 0 ] && have service; then
		say "postgres: service postgresql start"
		if service postgresql start; then
			started=0
		fi
	fi
	return "$started"
}

# Local trust authentication over TCP, for a cluster this script just installed.
pg_trust_local() {
	local v hba
	for v in $(pg_versions); do
		hba=/etc/postgresql/$v/main/pg_hba.conf
		[ -f "$hba" ] || continue
		say "postgres: trust authentication for 127.0.0.1/32 and ::1/128 in $hba"
		sed -ri 's#^(host[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]].*$#\1trust#' "$hba"
		pg_ctlcluster --skip-systemctl-redirect "$v" main reload >/dev/null 2>&1 || true
	done
	# The reload is asynchronous: wait until the postgres role gets in without a password.
	if have psql; then
		local i
		for ((i = 0; i < 10; i++)); do
			if pg_psql "select 1" >/dev/null 2>&1; then
				return 0
			fi
			sleep 1
		done
		warn "postgres: the postgres role still cannot connect over TCP without a password"
	fi
}

pg_help() {
	warn "postgres: nothing answers on $PG_HOST:$PG_PORT and it cannot be installed or started here."
	warn "  Install and start PostgreSQL 15 or newer, listening on $PG_HOST:$PG_PORT, with a"
	warn "  'postgres' role that may connect from $PG_HOST without a password (trust in pg_hba.conf)"
	warn "  and the pg_trgm extension available (the contrib modules),"
	warn "  or set LOGENGINE_POSTGRES_URL to a PostgreSQL server of your own."
}

ensure_postgres() {
	if pg_up; then
		say "postgres: running on $PG_HOST:$PG_PORT"
		return 0
	fi
	if pg_installed; then
		if ! pg_start; then
			warn "postgres: could not start the installed server"
			pg_missing
			return
		fi
	elif can_apt; then
		apt_install postgresql postgresql-contrib
		PG_FRESH=1
		pg_start || true
	else
		pg_missing
		return
	fi
	if ! wait_for postgres pg_up; then
		pg_missing
		return
	fi
	say "postgres: running on $PG_HOST:$PG_PORT"
	if [ "$PG_FRESH" -eq 1 ]; then
		pg_trust_local
	fi
}

# No local server: fatal unless LOGENGINE_POSTGRES_URL names another one.
pg_missing() {
	if [ -n "${LOGENGINE_POSTGRES_URL:-}" ]; then
		say "postgres: no local server; using LOGENGINE_POSTGRES_URL"
		return 0
	fi
	pg_help
	FAILED=1
}

pg_psql() {
	if [ -n "${LOGENGINE_POSTGRES_URL:-}" ]; then
		PGCONNECT_TIMEOUT=5 psql -w -X "$LOGENGINE_POSTGRES_URL" -Atc "$1"
	else
		PGCONNECT_TIMEOUT=5 psql -w -X -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atc "$1"
	fi
}

ensure_pg_trgm() {
	local q="select 1 from pg_available_extensions where name='pg_trgm'" out major
	if ! have psql; then
		say "postgres: psql not found, pg_trgm not checked"
		return 0
	fi
	if ! out=$(pg_psql "$q" 2>&1); then
		warn "postgres: cannot connect as postgres to check pg_trgm: $out"
		return 0
	fi
	if [ "$out" = 1 ]; then
		say "postgres: pg_trgm available"
		return 0
	fi
	if can_apt; then
		major=$(pg_psql "show server_version_num" 2>/dev/null || true)
		major=$((${major:-0} / 10000))
		# postgresql-contrib-N matches the running server; plain postgresql-contrib
		# is the distribution's default version.
		if [ "$major" -gt 0 ] && apt-cache show "postgresql-contrib-$major" >/dev/null 2>&1; then
			apt_install "postgresql-contrib-$major" || true
		else
			apt_install postgresql-contrib || true
		fi
		if [ "$(pg_psql "$q" 2>/dev/null || true)" = 1 ]; then
			say "postgres: pg_trgm available"
			return 0
		fi
	fi
	warn "postgres: the pg_trgm extension is not available; install the PostgreSQL contrib modules"
	warn "  (Debian/Ubuntu: apt-get install postgresql-contrib) for the server on $PG_HOST:$PG_PORT."
	FAILED=1
}

# The default database of --postgres-url.
ensure_pg_database() {
	local out
	if [ -n "${LOGENGINE_POSTGRES_URL:-}" ] || ! have psql; then
		return 0
	fi
	if ! out=$(pg_psql "select 1 from pg_database where datname='$PG_DB'" 2>/dev/null); then
		return 0
	fi
	if [ "$out" = 1 ]; then
		say "postgres: database $PG_DB exists"
	elif pg_psql "create database $PG_DB" >/dev/null; then
		say "postgres: database $PG_DB created"
	else
		warn "postgres: could not create database $PG_DB"
	fi
}

# --------------------------------------------------------------------- Redis

redis_up() {
	if have redis-cli; then
		[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
	else
		tcp_open "$REDIS_HOST" "$REDIS_PORT"
	fi
}

redis_start() {
	local major bind=("$REDIS_HOST")
	major=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9][0-9]*\)\..*/\1/p')
	# "-::1" (IPv6 loopback, skipped where there is none) needs Redis 7 or newer.
	if [ "${major:-0}" -ge 7 ]; then
		bind+=(-::1)
	fi
	say "redis: starting redis-server on $REDIS_HOST:$REDIS_PORT"
	redis-server --daemonize yes --bind "${bind[@]}" --port "$REDIS_PORT" \
		--save "" --appendonly no --dir "${TMPDIR:-/tmp}"
}

redis_help() {
	warn "redis: nothing answers on $REDIS_HOST:$REDIS_PORT and it cannot be installed or started here."
	warn "  Install and start Redis listening on $REDIS_HOST:$REDIS_PORT,"
	warn "  or set LOGENGINE_REDIS_ADDR to a Redis server of your own (an empty value disables the cache)."
}

redis_missing() {
	if [ -n "${LOGENGINE_REDIS_ADDR+set}" ]; then
		say "redis: no local server; using LOGENGINE_REDIS_ADDR"
		return 0
	fi
	redis_help
	FAILED=1
}

ensure_redis() {
	if redis_up; then
		say "redis: running on $REDIS_HOST:$REDIS_PORT"
		return 0
	fi
	if tcp_open "$REDIS_HOST" "$REDIS_PORT"; then
		warn "redis: something listens on $REDIS_HOST:$REDIS_PORT but does not answer PING (password?)"
		redis_missing
		return
	fi
	if have redis-server; then
		if ! redis_start; then
			warn "redis: could not start redis-server"
			redis_missing
			return
		fi
	elif can_apt; then
		apt_install redis-server
		# The package may have started its own server already.
		redis_up || redis_start || true
	else
		redis_missing
		return
	fi
	if ! wait_for redis redis_up; then
		redis_missing
		return
	fi
	say "redis: running on $REDIS_HOST:$REDIS_PORT"
}

# ---------------------------------------------------------------- Prometheus

prom_installed() { have promtool && have prometheus; }

# The Debian package starts and enables its own server on :9090; the tests
# start theirs, so the packaged one is stopped and disabled.
prom_stop_packaged() {
	if have systemctl && [ -d /run/systemd/system ]; then
		systemctl disable --now prometheus >/dev/null 2>&1 || true
	elif have service; then
		service prometheus stop >/dev/null 2>&1 || true
	fi
}

prom_help() {
	warn "prometheus: promtool or prometheus not found; the alert rule and dashboard tests need both."
	warn "  Install Prometheus 2.x (Debian/Ubuntu: apt-get install prometheus) so that"
	warn "  promtool and prometheus are on PATH."
}

ensure_prometheus() {
	if prom_installed; then
		say "prometheus: promtool and prometheus installed"
		return 0
	fi
	if can_apt; then
		apt_install prometheus || true
		prom_stop_packaged
		if prom_installed; then
			say "prometheus: promtool and prometheus installed"
			return 0
		fi
	fi
	# Not fatal: only those tests need it, not `make run`.
	prom_help
}

# ---------------------------------------------------------------- syslog clients

# The syslog tests send with rsyslog and logger (util-linux; Debian's bsdutils).
# The packaged rsyslog daemon is not needed: the tests run their own rsyslogd.
syslog_installed() { have logger && { have rsyslogd || [ -x /usr/sbin/rsyslogd ]; }; }

rsyslog_stop_packaged() {
	if have systemctl && [ -d /run/systemd/system ]; then
		systemctl disable --now rsyslog >/dev/null 2>&1 || true
	elif have service; then
		service rsyslog stop >/dev/null 2>&1 || true
	fi
}

ensure_syslog_clients() {
	if syslog_installed; then
		say "syslog: rsyslogd and logger installed"
		return 0
	fi
	if can_apt; then
		apt_install rsyslog bsdutils || true
		rsyslog_stop_packaged
		if syslog_installed; then
			say "syslog: rsyslogd and logger installed"
			return 0
		fi
	fi
	warn "syslog: rsyslogd or logger not found; the syslog tests need both."
	warn "  Debian/Ubuntu: apt-get install rsyslog bsdutils"
	FAILED=1
}

# ------------------------------------------------------------------ Chromium

chromium_installed() { have chromium || have chromium-browser || have google-chrome; }

chromium_help() {
	warn "chromium: not found; the web UI tests (app/webtest) drive it headless and fail without it."
	warn "  Install Chromium (Debian: apt-get install chromium; Ubuntu: a chromium that is not a snap)"
	warn "  so that chromium is on PATH."
}

ensure_chromium() {
	if chromium_installed; then
		say "chromium: installed"
		return 0
	fi
	if can_apt; then
		apt_install chromium || true
		if chromium_installed; then
			say "chromium: installed"
			return 0
		fi
	fi
	# Not fatal: only the web UI tests need it, not `make run`.
	chromium_help
}

ensure_postgres
if [ "$FAILED" -eq 0 ]; then
	ensure_pg_trgm
	ensure_pg_database
fi
ensure_redis
ensure_prometheus
ensure_chromium
ensure_syslog_clients
exit "$FAILED"
