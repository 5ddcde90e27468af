package app_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app/apptest"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/twmb/franz-go/pkg/kfake"
)

// secureKafka is a Kafka cluster that takes TLS connections only, and
// SASL with the mechanism, user and password given.
type secureKafka struct {
	brokers []string
	ca      *apptest.CA
}

func startSecureKafka(t *testing.T, mechanism, user, pass string) secureKafka {
	t.Helper()
	ca := apptest.NewCA(t, "kafka")
	_, _, cert := ca.Issue("kafka-broker")
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser(mechanism, user, pass),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return secureKafka{brokers: c.ListenAddrs(), ca: ca}
}

func (k secureKafka) config(mechanism, user, passwordFile string) ingest.KafkaConfig {
	kc := ingest.DefaultKafkaConfig()
	kc.Brokers = k.brokers
	kc.Partitions = 1
	kc.Security = ingest.KafkaSecurity{TLS: true, TLSCAFile: k.ca.File, SASLMechanism: mechanism, SASLUser: user, SASLPasswordFile: passwordFile}
	return kc
}

// TestKafkaTLSAndSASL: every mechanism authenticates over TLS with the
// password from its file, and a wrong password or no TLS is refused.
func TestKafkaTLSAndSASL(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			k := startSecureKafka(t, mech, "logengine", "s3cret-"+mech)
			good := writeFile(t, "password", "s3cret-"+mech+"\n")
			bad := writeFile(t, "wrong", "wrong-password")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			kc := k.config(mech, "logengine", good)
			if err := kc.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := ingest.EnsureTopics(ctx, kc, logger); err != nil {
				t.Fatalf("with the right password over TLS: %v", err)
			}
			short, cancelShort := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancelShort()
			if err := ingest.EnsureTopics(short, k.config(mech, "logengine", bad), logger); err == nil {
				t.Error("a wrong password was accepted")
			}
			plain := k.config(mech, "logengine", good)
			plain.Security.TLS, plain.Security.TLSCAFile = false, ""
			short2, cancelShort2 := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancelShort2()
			if err := ingest.EnsureTopics(short2, plain, logger); err == nil {
				t.Error("a connection without TLS was accepted")
			}
		})
	}
}

// TestPipelineOverSecuredKafka: the whole pipeline (producer, consumer,
// tail reader) works against a cluster that takes SCRAM over TLS only,
// with the password from the environment.
func TestPipelineOverSecuredKafka(t *testing.T) {
	t.Parallel()
	k := startSecureKafka(t, "SCRAM-SHA-512", "pipeline", "env-secret")
	p := startPipeline(t, func(c *configs.Config) {
		c.Kafka = k.config("SCRAM-SHA-512", "pipeline", "")
		c.Secrets(func(name string) (string, bool) {
			if name == configs.EnvKafkaSASLPassword {
				return "env-secret", true
			}
			return "", false
		})
	})
	r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "info", "source": "sasl", "message": "through SCRAM over TLS"})
	if r.status != 202 {
		t.Fatalf("ingest: %d %s", r.status, r.raw)
	}
	p.waitRows(1)
	if strings.Contains(p.logs.String(), "env-secret") || strings.Contains(string(get(t, p.gateway+"/config").raw), "env-secret") {
		t.Fatal("the SASL password shows in the logs or /config")
	}
}
