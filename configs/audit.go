package configs

import (
	"strings"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/spf13/pflag"
)

// Audit destinations other than a file path.
const (
	AuditStderr = "stderr"
	AuditStdout = "stdout"
	AuditOff    = "off"
)

// Audit configures the audit log: one record per query, live tail, admin
// request and DLQ replay, apart from the process's own logs.
type Audit struct {
	// Log is where records go: stderr (the default: a stream apart from
	// the process's logs on stdout), stdout, a file path (appended to,
	// reopened on SIGHUP), or off.
	Log string
	// MaxQueryBytes bounds a record's query; a longer one is cut and
	// marked, so a huge request cannot make a huge record.
	MaxQueryBytes int
}

// DefaultAudit is on, to stderr.
func DefaultAudit() Audit { return Audit{Log: AuditStderr, MaxQueryBytes: 4096} }

// Enabled reports whether records are written.
func (a *Audit) Enabled() bool { return a.Log != AuditOff }

// RegisterFlags binds the audit settings.
func (a *Audit) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.Log, "audit-log", a.Log,
		`where audit records go (JSON lines with "log":"audit"): stderr, stdout, a file path (appended to, created 0600, reopened on SIGHUP for log rotation), or off`)
	fs.IntVar(&a.MaxQueryBytes, "audit-max-query-bytes", a.MaxQueryBytes,
		"longest query an audit record keeps; a longer one is cut and marked truncated")
}

// Validate reports every setting that cannot work, naming its flag.
func (a *Audit) Validate() error {
	var p flagvalue.Problems
	if strings.TrimSpace(a.Log) == "" {
		p.Add("audit-log", "must be stderr, stdout, a file path or off")
	}
	if a.MaxQueryBytes < 64 {
		p.Add("audit-max-query-bytes", "must be at least 64")
	}
	return p.Err()
}
