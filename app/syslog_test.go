package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// syslogTool is the path of a program the syslog tests need; a missing
// one fails the test (.ci/services.sh installs them).
func syslogTool(t *testing.T, name string, dirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("%s is not installed; run .ci/services.sh (Debian: apt-get install rsyslog bsdutils)", name)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// util-linux's logger sends RFC 5424 (octet-counted or not) and RFC 3164
// over TCP and UDP, and rsyslog forwards over TCP; every message is stored
// with its app-name as source, its severity as level and the rest as
// metadata.
func TestSyslogFromLoggerAndRsyslog(t *testing.T) {
	logger := syslogTool(t, "logger")
	rsyslogd := syslogTool(t, "rsyslogd", "/usr/sbin", "/sbin")
	p := startPipeline(t, func(c *configs.Config) { c.Syslog.Addr = freeAddr(t) })
	host, port, _ := strings.Cut(p.app.SyslogAddr(), ":")
	id := uuid.NewString()[:8]

	send := func(args ...string) {
		t.Helper()
		out, err := exec.Command(logger, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	send("--tcp", "--octet-count", "--rfc5424", "--server", host, "--port", port, "-t", "octet-"+id, "-p", "local0.err",
		"--msgid", "REQ", "--sd-id", "req@32473", "--sd-param", `trace_id="4bf92f3577b34da6a3ce929d0e0e4736"`, "--sd-param", `user="u 1"`,
		"tcp octet-counted message")
	send("--tcp", "--rfc3164", "--server", host, "--port", port, "-t", "bsd-"+id, "-p", "user.warning", "-i", "tcp newline message")
	send("--udp", "--rfc5424", "--server", host, "--port", port, "-t", "udp-"+id, "-p", "daemon.debug", "udp message")

	// rsyslog takes a message over UDP and forwards it over TCP,
	// octet-counted, as RFC 5424.
	dir := t.TempDir()
	rsPort := strings.Split(freeAddr(t), ":")[1]
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="%s")
action(type="omfwd" target=%q port=%q protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
`, dir, rsPort, host, port)
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := exec.CommandContext(ctx, rsyslogd, "-n", "-f", filepath.Join(dir, "rsyslog.conf"), "-i", filepath.Join(dir, "rsyslogd.pid"))
	var rsOut lockedBuffer
	rs.Stdout, rs.Stderr = &rsOut, &rsOut
	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = rs.Wait()
		if t.Failed() {
			t.Logf("rsyslogd:\n%s", rsOut.String())
		}
	})
	// rsyslog may not listen yet: send until the message arrives (UDP is
	// lossy; duplicates are counted by source below, so one suffices).
	source := "relay-" + id
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		send("--udp", "--rfc5424", "--server", "127.0.0.1", "--port", rsPort, "-t", source, "-p", "local3.crit", "through rsyslog")
		time.Sleep(200 * time.Millisecond)
		return p.protocolEvents("syslog", "accepted") >= 4, "rsyslog has not forwarded the message yet"
	})
	cancel()

	host5424 := mustHostname(t)
	stored := func(source string) map[string]any {
		t.Helper()
		return p.storedAtLeast(t, 4, source)
	}
	e := stored("octet-" + id)
	checkFields(t, "octet-counted RFC 5424", e, map[string]any{"message": "tcp octet-counted message", "logLevel": "ERROR",
		"traceId": "4bf92f3577b34da6a3ce929d0e0e4736"})
	checkFields(t, "octet-counted RFC 5424 metadata", e["metadata"].(map[string]any), map[string]any{"facility": "local0", "severity": 3,
		"msgid": "REQ", "req@32473.user": "u 1", "req@32473.trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "hostname": host5424})
	e = stored("bsd-" + id)
	checkFields(t, "RFC 3164 over TCP", e, map[string]any{"message": "tcp newline message", "logLevel": "WARN", "traceId": nil})
	meta := e["metadata"].(map[string]any)
	checkFields(t, "RFC 3164 metadata", meta, map[string]any{"facility": "user", "severity": 4})
	if meta["procid"] == nil {
		t.Errorf("RFC 3164 with -i: no procid in %v", meta)
	}
	e = stored("udp-" + id)
	checkFields(t, "RFC 5424 over UDP", e, map[string]any{"message": "udp message", "logLevel": "DEBUG"})
	checkFields(t, "RFC 5424 over UDP metadata", e["metadata"].(map[string]any), map[string]any{"facility": "daemon", "severity": 7})
	if lines := p.lokiLines(t, `{source="octet-`+id+`", msgid="REQ"}`, time.Now().Add(-time.Hour)); !slices.Equal(lines, []string{"tcp octet-counted message"}) {
		t.Errorf("Loki query API: %q", lines)
	}
	e = stored(source)
	checkFields(t, "through rsyslog", e, map[string]any{"message": "through rsyslog", "logLevel": "FATAL"})
	checkFields(t, "through rsyslog metadata", e["metadata"].(map[string]any), map[string]any{"facility": "local3", "severity": 2})
}

func mustHostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
