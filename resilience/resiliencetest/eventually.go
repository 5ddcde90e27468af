package resiliencetest

import (
	"testing"
	"time"
)

// Eventually calls cond until it reports ok and fails the test, with the
// last status cond gave, if timeout passes first. It polls quickly at first
// and then every quarter second, so a fast condition costs little and a
// slow one does not hammer what it watches. cond runs on the test's
// goroutine and may itself fail the test.
//
// It lives here, in a package that imports only the standard library, so
// tests of every layer can use it without importing a layer they must not.
func Eventually(t testing.TB, timeout time.Duration, cond func() (ok bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, status)
		}
		time.Sleep(wait)
		wait = min(2*wait, 250*time.Millisecond)
	}
}
