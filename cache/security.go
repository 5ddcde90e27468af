package cache

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/redis/rueidis"
)

// Security is how the cache authenticates to Redis (ACL user and
// password) and protects the connection (TLS).
type Security struct {
	User string
	// PasswordFile is read at every connection, so a rotated password
	// takes effect without a restart.
	PasswordFile string
	// Password comes from the environment (never a flag: flags show in
	// ps); the file wins when both are set.
	Password    string
	TLS         bool
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string
}

func (s *Security) validate(add func(flag, format string, args ...any)) {
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		add("redis-tls-cert-file", "--redis-tls-cert-file and --redis-tls-key-file go together")
	}
	if !s.TLS && (s.TLSCAFile != "" || s.TLSCertFile != "") {
		add("redis-tls", "must be set to use --redis-tls-ca-file or --redis-tls-cert-file")
	}
}

// Check reads the files now, so that a missing or bad one fails the
// start instead of every connection.
func (s *Security) Check() error {
	if _, err := s.password(); err != nil {
		return err
	}
	return s.apply(&rueidis.ClientOption{})
}

func (s *Security) password() (string, error) {
	return flagvalue.Secret(s.Password, s.PasswordFile, "redis-password-file")
}

// apply sets the TLS configuration and the credentials of every
// connection on o.
func (s *Security) apply(o *rueidis.ClientOption) error {
	if s.TLS {
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.TLSCAFile != "" {
			pem, err := os.ReadFile(s.TLSCAFile)
			if err != nil {
				return fmt.Errorf("--redis-tls-ca-file: %w", err)
			}
			conf.RootCAs = x509.NewCertPool()
			if !conf.RootCAs.AppendCertsFromPEM(pem) {
				return errors.New("--redis-tls-ca-file: no PEM certificate in " + s.TLSCAFile)
			}
		}
		if s.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
			if err != nil {
				return fmt.Errorf("--redis-tls-cert-file/--redis-tls-key-file: %w", err)
			}
			conf.Certificates = []tls.Certificate{cert}
		}
		o.TLSConfig = conf
	}
	if s.User != "" || s.PasswordFile != "" || s.Password != "" {
		o.AuthCredentialsFn = func(rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
			pass, err := s.password()
			return rueidis.AuthCredentials{Username: s.User, Password: pass}, err
		}
	}
	return nil
}
