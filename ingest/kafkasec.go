package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaSecurity is how logengine's clients authenticate to a Kafka cluster
// and protect the connection. The embedded broker takes none of it.
type KafkaSecurity struct {
	TLS         bool
	TLSCAFile   string // PEM CAs to trust instead of the system's
	TLSCertFile string // client certificate, for brokers that ask for one
	TLSKeyFile  string
	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism string
	SASLUser      string
	// SASLPasswordFile is read at every connection, so a rotated password
	// takes effect without a restart.
	SASLPasswordFile string
	// SASLPassword comes from the environment (never a flag: flags show in
	// ps); the file wins when both are set.
	SASLPassword string
}

// Configured reports whether any security setting is given.
func (s *KafkaSecurity) Configured() bool {
	return s.TLS || s.TLSCAFile != "" || s.TLSCertFile != "" || s.SASLMechanism != ""
}

// validate reports every setting that cannot work, naming its flag.
func (s *KafkaSecurity) validate(add func(flag, format string, args ...any)) {
	switch strings.ToUpper(s.SASLMechanism) {
	case "":
		if s.SASLUser != "" || s.SASLPasswordFile != "" {
			add("kafka-sasl-mechanism", "must be set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) with --kafka-sasl-user")
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if s.SASLUser == "" {
			add("kafka-sasl-user", "is required with --kafka-sasl-mechanism")
		}
		if s.SASLPasswordFile == "" && s.SASLPassword == "" {
			add("kafka-sasl-password-file", "is required with --kafka-sasl-mechanism (or set LOGENGINE_KAFKA_SASL_PASSWORD)")
		}
	default:
		add("kafka-sasl-mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not %q", s.SASLMechanism)
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		add("kafka-tls-cert-file", "--kafka-tls-cert-file and --kafka-tls-key-file go together")
	}
	if !s.TLS && (s.TLSCAFile != "" || s.TLSCertFile != "") {
		add("kafka-tls", "must be set to use --kafka-tls-ca-file or --kafka-tls-cert-file")
	}
}

// password is the SASL password as it is now.
func (s *KafkaSecurity) password() (string, error) {
	return flagvalue.Secret(s.SASLPassword, s.SASLPasswordFile, "kafka-sasl-password-file")
}

// clientOpts are the franz-go options of the security settings.
func (s *KafkaSecurity) clientOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS {
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.TLSCAFile != "" {
			pem, err := os.ReadFile(s.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-ca-file: %w", err)
			}
			conf.RootCAs = x509.NewCertPool()
			if !conf.RootCAs.AppendCertsFromPEM(pem) {
				return nil, errors.New("--kafka-tls-ca-file: no PEM certificate in " + s.TLSCAFile)
			}
		}
		if s.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-cert-file/--kafka-tls-key-file: %w", err)
			}
			conf.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(conf))
	}
	if s.SASLMechanism != "" {
		if _, err := s.password(); err != nil {
			return nil, err // fail at start, not at the first connection
		}
		var mech sasl.Mechanism
		switch strings.ToUpper(s.SASLMechanism) {
		case "PLAIN":
			mech = plain.Plain(func(context.Context) (plain.Auth, error) {
				pass, err := s.password()
				return plain.Auth{User: s.SASLUser, Pass: pass}, err
			})
		case "SCRAM-SHA-256", "SCRAM-SHA-512":
			auth := func(context.Context) (scram.Auth, error) {
				pass, err := s.password()
				return scram.Auth{User: s.SASLUser, Pass: pass}, err
			}
			mech = scram.Sha256(auth)
			if strings.HasSuffix(strings.ToUpper(s.SASLMechanism), "512") {
				mech = scram.Sha512(auth)
			}
		default:
			return nil, fmt.Errorf("--kafka-sasl-mechanism: unknown %q", s.SASLMechanism)
		}
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// SecurityOpts are the TLS and SASL options alone, for the tools that
// take their brokers apart (the DLQ commands).
func (c *KafkaConfig) SecurityOpts() ([]kgo.Opt, error) { return c.Security.clientOpts() }

// ClientOpts are the options every client of these brokers starts with:
// the seed brokers, TLS and SASL.
func (c *KafkaConfig) ClientOpts() ([]kgo.Opt, error) {
	sec, err := c.Security.clientOpts()
	if err != nil {
		return nil, err
	}
	return append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, sec...), nil
}
