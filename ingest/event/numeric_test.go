package event_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/storetest"
)

// NumericFits says what PostgreSQL says: the numbers its numeric, and so
// jsonb, takes.
func TestNumericFitsAgreesWithPostgreSQL(t *testing.T) {
	server := os.Getenv(storetest.EnvURL)
	if server == "" {
		server = storetest.DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("PostgreSQL at %s (set %s): %v", server, storetest.EnvURL, err)
	}
	defer conn.Close(context.Background())
	for _, num := range []string{
		"0", "-0", "1", "-12.5", "1e1000000", "1e1001", "1e131071", "1e131072", "-1e131072", "0.1e131072", "0.1e131073",
		"123e131069", "1234e131069", "1e-16383", "1e-16384", "1.0e-16383", "0e-20000", "0.0e-16383", "0e-16383",
		"1E+5", "1e+131071", "12e131070", "12e131071", "0.00012e131075", "0.00012e131076", "1e0000000000000000005", "1e-0000000000000000005",
		"1e99999999999", "0." + strings.Repeat("0", 16382) + "1", "0." + strings.Repeat("0", 16381) + "1",
		"1" + strings.Repeat("0", 131071), "1" + strings.Repeat("0", 131072), "9.99e131071",
	} {
		var ok bool
		_, err := conn.Exec(ctx, "SELECT ($1::text)::jsonb", `{"n":`+num+`}`)
		ok = err == nil
		if got := event.NumericFits(num); got != ok {
			short := num
			if len(short) > 30 {
				short = short[:30] + "…"
			}
			t.Errorf("NumericFits(%s) = %v, PostgreSQL: %v", short, got, err)
		}
	}
}
