package app_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store/storetest"
)

// TestReadReplica runs every role with --postgres-read-url naming the
// streaming replica of a throwaway primary: logs sent are searched on
// the replica; a log backfilled into a cached past window while the
// replica does not replay is in the next answer and in the one cached
// after it (an answer from the late replica would be cached under the
// epochs that already count the log); a stopped replica costs the client
// nothing, and is used again once back.
func TestReadReplica(t *testing.T) {
	t.Parallel()
	rs := storetest.NewReplicaSet(t)
	db := rs.NewDatabase()
	p := startPipeline(t, func(c *configs.Config) {
		c.Postgres.URL = rs.PrimaryURL(db)
		c.Replicas.URLs = []string{rs.ReplicaURL(db)}
		c.Replicas.CheckInterval = 50 * time.Millisecond
	})
	routed := func(target string) float64 {
		return metricValue(string(get(t, p.gateway+"/metrics").raw), `store_reads_routed_total{target="`+target+`"}`)
	}
	up := fmt.Sprintf(`store_replica_up{replica=%q}`, rs.ReplicaAddr())
	waitUp := func() {
		t.Helper()
		resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
			return metricValue(string(get(t, p.gateway+"/metrics").raw), up) == 1, "the replica is not up"
		})
	}
	waitUp()

	past := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	send := func(msg string, at time.Time) {
		t.Helper()
		r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{
			"id": uuid.NewString(), "timestamp": at.Format(time.RFC3339Nano), "level": "INFO", "source": "replicated", "message": msg})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	}
	closed := p.gateway + "/api/v1/logs?" + windowQuery(past, past.Add(time.Hour))
	// A window up to now: hot.
	hot := p.gateway + "/api/v1/logs?source=replicated&startTime=" + url.QueryEscape(past.Add(-time.Hour).Format(time.RFC3339))
	search := func(url string, headers ...string) response {
		t.Helper()
		r := do(t, http.MethodGet, url, "", nil, headers...)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", url, r.status, r.raw)
		}
		return r
	}

	send("first", past.Add(time.Minute))
	p.waitProcessed(1)
	rs.WaitReplayed()
	before := routed("replica")
	if r := search(closed); r.header.Get("X-Cache") != "MISS" || r.body["totalElements"] != 1.0 {
		t.Fatalf("first search: X-Cache %q, %s", r.header.Get("X-Cache"), r.raw)
	}
	if r := search(hot, "Cache-Control", "no-cache"); r.body["totalElements"] != 1.0 {
		t.Fatalf("hot search: %s", r.raw)
	}
	if got := routed("replica") - before; got != 2 {
		t.Fatalf("the replica answered %v of 2 searches", got)
	}
	if r := search(closed); r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("second search: X-Cache %q", r.header.Get("X-Cache"))
	}

	t.Run("backfill while the replica lags", func(t *testing.T) {
		rs.PauseReplay()
		defer rs.ResumeReplay()
		send("backfilled", past.Add(30*time.Minute))
		p.waitProcessed(2) // stored on the primary, the window's epoch bumped
		for i, want := range []string{"MISS", "HIT"} {
			r := search(closed)
			if r.header.Get("X-Cache") != want || r.body["totalElements"] != 2.0 {
				t.Fatalf("search %d after the backfill: X-Cache %q (want %s), %s", i+1, r.header.Get("X-Cache"), want, r.raw)
			}
		}
	})

	t.Run("replica stopped and restarted", func(t *testing.T) {
		rs.WaitReplayed()
		rs.StopReplica()
		fallback := routed("fallback")
		for range 5 {
			if r := search(hot, "Cache-Control", "no-cache"); r.body["totalElements"] != 2.0 {
				t.Fatalf("with the replica stopped: %s", r.raw)
			}
		}
		if routed("fallback") == fallback {
			t.Fatal("no read fell back to the primary")
		}
		health := get(t, p.gateway+"/healthz")
		if health.status != http.StatusOK {
			t.Fatalf("the gateway is not healthy without its replica: %d %s", health.status, health.raw)
		}

		rs.StartReplica()
		waitUp()
		before := routed("replica")
		if r := search(hot, "Cache-Control", "no-cache"); r.body["totalElements"] != 2.0 {
			t.Fatalf("after the restart: %s", r.raw)
		}
		if routed("replica") != before+1 {
			t.Fatal("the restarted replica does not answer")
		}
	})
}
