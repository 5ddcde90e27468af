package resiliencetest_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/resilience/resiliencetest"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as testing's does.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls Eventually on its own goroutine, so that Fatalf's Goexit ends
// that one, and returns the failure message, if any.
func run(timeout time.Duration, cond func() (bool, string)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resiliencetest.Eventually(r, timeout, cond)
	}()
	<-done
	return r.failed
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	msg := run(time.Minute, func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprint("call ", calls)
	})
	if msg != "" || calls != 3 {
		t.Errorf("Eventually failed with %q after %d calls, want success on the third", msg, calls)
	}
}

func TestEventuallyFailsWithTheLastStatus(t *testing.T) {
	calls := 0
	msg := run(20*time.Millisecond, func() (bool, string) {
		calls++
		// Holds long past the timeout, so an Eventually that never gives
		// up ends (and fails below) instead of hanging.
		return calls > 50, fmt.Sprint("still waiting after call ", calls)
	})
	if calls < 2 || !strings.HasSuffix(msg, fmt.Sprint("still waiting after call ", calls)) {
		t.Errorf("Eventually failed with %q after %d calls, want the last status", msg, calls)
	}
}
