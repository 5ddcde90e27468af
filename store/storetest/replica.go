package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPGBin names the variable holding the directory of PostgreSQL's
// server programs (initdb, pg_ctl, pg_basebackup) ReplicaSet runs.
const EnvPGBin = "LOGENGINE_TEST_PG_BIN"

// DefaultPGBin is that directory when EnvPGBin is unset (Debian's
// PostgreSQL 15).
const DefaultPGBin = "/usr/lib/postgresql/15/bin"

// ReplicaSet is a throwaway PostgreSQL primary with one streaming replica,
// each its own server in a temporary directory on a free port, run as
// the postgres OS user when the test runs as root (PostgreSQL refuses to
// run as root). Both listen on 127.0.0.1 with trust authentication.
type ReplicaSet struct {
	t                        testing.TB
	bin, dir, osUser         string
	primaryDir, replicaDir   string
	primaryPort, replicaPort int
}

// NewReplicaSet creates the primary (initdb), takes a base backup of it
// as the replica (pg_basebackup -R), starts both and registers
// t.Cleanup to stop them and delete their files, even when the test
// fails. It fails the test, never skips it, when the programs are
// missing. It takes a few seconds: share one set between the subtests
// of a test.
func NewReplicaSet(t testing.TB) *ReplicaSet {
	t.Helper()
	bin := os.Getenv(EnvPGBin)
	if bin == "" {
		bin = DefaultPGBin
	}
	for _, p := range []string{"initdb", "pg_ctl", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			t.Fatalf("storetest: PostgreSQL's %s is missing (install PostgreSQL 15's server, or set %s): %v", p, EnvPGBin, err)
		}
	}
	rs := &ReplicaSet{t: t, bin: bin}
	if os.Geteuid() == 0 {
		rs.osUser = "postgres"
	}
	dir, err := os.MkdirTemp("", "logengine-replicas-")
	if err != nil {
		t.Fatal(err)
	}
	rs.dir = dir
	t.Cleanup(func() { rs.cleanup() })
	if rs.osUser != "" {
		u, err := user.Lookup(rs.osUser)
		if err != nil {
			t.Fatalf("storetest: the %s OS user PostgreSQL runs as: %v", rs.osUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	rs.primaryDir = filepath.Join(dir, "primary")
	rs.replicaDir = filepath.Join(dir, "replica")
	rs.primaryPort, rs.replicaPort = freePort(t), freePort(t)

	rs.run("initdb", "-D", rs.primaryDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	conf := strings.Join([]string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + dir + "'",
		"wal_level = replica",
		"max_wal_senders = 4",
		"hot_standby = on",
		"hot_standby_feedback = on",
		// A throwaway server: no durability, a little memory.
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"shared_buffers = 16MB",
		"max_connections = 50",
		"wal_receiver_status_interval = 1s",
		"",
	}, "\n")
	rs.appendFile(filepath.Join(rs.primaryDir, "postgresql.conf"), conf)
	// The primary's own rule for replication connections, whatever
	// initdb's template holds.
	rs.appendFile(filepath.Join(rs.primaryDir, "pg_hba.conf"), "host replication postgres 127.0.0.1/32 trust\n")
	rs.start(rs.primaryDir, rs.primaryPort)
	rs.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(rs.primaryPort), "-U", "postgres",
		"-D", rs.replicaDir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	rs.StartReplica()
	return rs
}

// PrimaryURL is the URL of database db on the primary.
func (rs *ReplicaSet) PrimaryURL(db string) string { return pgURL(rs.primaryPort, db) }

// ReplicaURL is the URL of database db on the replica.
func (rs *ReplicaSet) ReplicaURL(db string) string { return pgURL(rs.replicaPort, db) }

// ReplicaAddr is the replica's host:port.
func (rs *ReplicaSet) ReplicaAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(rs.replicaPort))
}

func pgURL(port int, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path: "/" + db, RawQuery: "sslmode=disable&connect_timeout=5"}
	return u.String()
}

// NewDatabase creates a uniquely named empty database on the primary and
// waits until the replica has it; it returns its name.
func (rs *ReplicaSet) NewDatabase() string {
	rs.t.Helper()
	name := "logengine_test_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	rs.exec(rs.PrimaryURL("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	rs.WaitReplayed()
	return name
}

// StopReplica stops the replica at once, as a crash would (pg_ctl stop
// -m immediate).
func (rs *ReplicaSet) StopReplica() {
	rs.t.Helper()
	rs.run("pg_ctl", "stop", "-D", rs.replicaDir, "-m", "immediate", "-w")
}

// StartReplica starts the replica and waits until it accepts connections.
func (rs *ReplicaSet) StartReplica() {
	rs.t.Helper()
	rs.start(rs.replicaDir, rs.replicaPort)
}

// PauseReplay stops the replica applying WAL (it still receives it), so
// it falls behind the primary until ResumeReplay. It first commits a
// transaction on the primary and waits for the replica to replay it, so
// that the replica's lag (the age of the last commit it replayed, once
// the primary writes more) grows from about now.
func (rs *ReplicaSet) PauseReplay() {
	rs.t.Helper()
	rs.exec(rs.PrimaryURL("postgres"), "CREATE TABLE IF NOT EXISTS storetest_tick (at timestamptz); INSERT INTO storetest_tick VALUES (now())")
	rs.WaitReplayed()
	rs.exec(rs.ReplicaURL("postgres"), "SELECT pg_wal_replay_pause()")
}

// ResumeReplay lets the replica apply WAL again.
func (rs *ReplicaSet) ResumeReplay() {
	rs.t.Helper()
	rs.exec(rs.ReplicaURL("postgres"), "SELECT pg_wal_replay_resume()")
}

// WaitReplayed waits until the replica has applied every WAL record the
// primary had written when it was called.
func (rs *ReplicaSet) WaitReplayed() {
	rs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lsn string
	if err := rs.queryRow(ctx, rs.PrimaryURL("postgres"), "SELECT pg_current_wal_insert_lsn()::text", &lsn); err != nil {
		rs.t.Fatalf("storetest: the primary's WAL position: %v", err)
	}
	for {
		var done bool
		err := rs.queryRow(ctx, rs.ReplicaURL("postgres"), "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", &done, lsn)
		if err == nil && done {
			return
		}
		select {
		case <-ctx.Done():
			rs.t.Fatalf("storetest: the replica did not replay up to %s within 30s (last error: %v)\n%s", lsn, err, rs.serverLog(rs.replicaDir))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (rs *ReplicaSet) exec(dbURL, sql string) {
	rs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		rs.t.Fatalf("storetest: %s: %v", sql, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		rs.t.Fatalf("storetest: %s: %v", sql, err)
	}
}

func (rs *ReplicaSet) queryRow(ctx context.Context, dbURL, sql string, dst any, args ...any) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dst)
}

func (rs *ReplicaSet) start(dataDir string, port int) {
	rs.t.Helper()
	rs.run("pg_ctl", "start", "-w", "-t", "60", "-D", dataDir, "-l", filepath.Join(rs.dir, filepath.Base(dataDir)+".log"),
		"-o", fmt.Sprintf("-p %d -k %s", port, rs.dir))
}

// run runs one of PostgreSQL's programs as the server's OS user.
func (rs *ReplicaSet) run(prog string, args ...string) {
	rs.t.Helper()
	name := filepath.Join(rs.bin, prog)
	if rs.osUser != "" {
		args = append([]string{"-u", rs.osUser, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = rs.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		rs.t.Fatalf("storetest: %s %s: %v\n%s%s", prog, strings.Join(args, " "), err, out,
			rs.serverLog(rs.primaryDir)+rs.serverLog(rs.replicaDir))
	}
}

// serverLog is the end of a server's log, for a failure's message.
func (rs *ReplicaSet) serverLog(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(rs.dir, filepath.Base(dataDir)+".log"))
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "--- " + filepath.Base(dataDir) + " log ---\n" + string(b)
}

func (rs *ReplicaSet) appendFile(path, text string) {
	rs.t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(text)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		rs.t.Fatal(err)
	}
}

// cleanup stops whatever runs and deletes the directory; a server that
// is not running is no error.
func (rs *ReplicaSet) cleanup() {
	for _, d := range []string{rs.replicaDir, rs.primaryDir} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postmaster.pid")); err != nil {
			continue
		}
		name, args := filepath.Join(rs.bin, "pg_ctl"), []string{"stop", "-D", d, "-m", "immediate", "-w"}
		if rs.osUser != "" {
			args = append([]string{"-u", rs.osUser, "--", name}, args...)
			name = "runuser"
		}
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			rs.t.Errorf("storetest: stop the server in %s: %v\n%s", d, err, out)
		}
	}
	if err := os.RemoveAll(rs.dir); err != nil {
		rs.t.Errorf("storetest: %v", err)
	}
}

// freePort is a TCP port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
