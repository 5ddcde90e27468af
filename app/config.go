package app

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/spf13/pflag"
)

// runningConfig is every setting of this process as the component that
// uses it reports it, keyed by flag name, in the --config file's format.
// Asking the components, rather than reading the parsed flags, is the
// point: a flag that never reaches its component shows its default here.
func (a *App) runningConfig() string {
	eff := a.cfg
	fs := pflag.NewFlagSet("running", pflag.ContinueOnError)
	fs.SortFlags = false
	eff.Audit = a.audit.Config()
	eff.RegisterProcessFlags(fs)
	if a.producer != nil {
		eff.Kafka = a.producer.Kafka()
		eff.Producer = a.producer.Config()
		eff.Kafka.RegisterFlags(fs)
		eff.Producer.RegisterFlags(fs)
	}
	if a.handler != nil {
		eff.Ingest = a.handler.Config()
		eff.Ingest.RegisterFlags(fs)
	}
	if a.lokiPush != nil {
		eff.LokiPush = a.lokiPush.Config()
		eff.LokiPush.RegisterFlags(fs)
	}
	if a.elastic != nil {
		eff.Elastic = a.elastic.Config()
		eff.Elastic.RegisterFlags(fs)
		// The syslog settings reach the producer with the rest of its
		// configuration; the listener reports its own address.
		eff.Syslog = a.cfg.Syslog
		if a.syslog != nil {
			eff.Syslog = a.syslog.Config()
		}
		eff.Syslog.RegisterFlags(fs)
	}
	if a.consumer != nil {
		eff.Consumer = a.consumer.Config()
		eff.Consumer.RegisterFlags(fs)
	}
	if a.store != nil {
		eff.Postgres = a.store.Config()
		eff.Postgres.RegisterFlags(fs)
	}
	if a.replicas != nil {
		eff.Replicas = a.replicas.Config()
		eff.Replicas.RegisterFlags(fs)
	}
	if a.cache != nil {
		eff.Redis = a.cache.Config()
		eff.Redis.RegisterFlags(fs)
	}
	if a.query != nil {
		eff.Gateway = a.query.Config()
		eff.QueryLimits = a.queryHandler.Limits()
		eff.Gateway.RegisterFlags(fs)
		eff.QueryLimits.RegisterFlags(fs)
		eff.Tail = a.tail.Config()
		eff.Tail.RegisterFlags(fs)
		eff.Loki = a.loki.Config()
		eff.Loki.RegisterFlags(fs)
	}
	var b strings.Builder
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		v := redactURL(f.DefValue)
		if f.Value.Type() == "list" {
			v = redactList(f.DefValue)
		}
		switch f.Value.Type() {
		case "string", "list":
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Name, v)
	})
	return b.String()
}

// configHandler serves the running configuration, passwords redacted.
func (a *App) configHandler(c echo.Context) error {
	return c.Blob(200, "application/yaml; charset=utf-8", []byte(a.runningConfig()))
}

// redactURL hides the passwords a setting may hold: a URL's user
// password and its password query parameter (postgres://u:x@h/db,
// ?password=x), and the password of a keyword/value connection string
// (host=h password=x); other values pass.
func redactURL(v string) string {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			// Unreadable: hide whatever user information it has.
			return keywordPassword.ReplaceAllString(userInfo.ReplaceAllString(v, "://xxxxx@"), "${1}xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		return u.String()
	}
	return keywordPassword.ReplaceAllString(v, "${1}xxxxx")
}

var userInfo = regexp.MustCompile(`://[^/?#]*@`)

// keywordPassword finds the value of password= in a keyword/value
// connection string, quoted or not.
var keywordPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)
