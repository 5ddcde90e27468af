package main

// The data set: one distribution, written twice. The SQL generator fills
// the database fast, inside PostgreSQL; the Go generator makes the events
// the ingest measurement sends through store.WriteBatch. Both are built
// from the constants below, so the two stay alike.

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

const (
	// rareWord is in one row of every rareEvery, at evenly spread rows:
	// the needle of the keyword search, answered by the trigram index.
	rareWord  = "zygomorphic"
	rareEvery = 100_000
	// commonWord starts commonShare of the messages: the keyword that
	// matches a lot and tests early termination instead.
	commonWord  = "request"
	commonShare = 0.30
	// wordsPerMessage words of the vocabulary, then two numbers: messages
	// of 80 to 90 characters, as services write them.
	wordsPerMessage = 9
	sources         = 50
	users           = 10_000
)

// levelCuts are cumulative shares of the levels (codes 0 TRACE .. 5
// FATAL): DEBUG 6%, INFO 70%, WARN 15%, ERROR 8%, FATAL 1%.
var levelCuts = []struct {
	code int16
	upTo float64
}{{1, 0.06}, {2, 0.76}, {3, 0.91}, {4, 0.99}, {5, 1}}

var regions = []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1"}

// vocabulary is the 200 words messages are made of. None contains
// rareWord or commonWord, so a keyword search finds exactly the rows
// built to match it (init checks).
var vocabulary = strings.Fields(`
	user session token cache miss hit database connection pool timeout
	retry failed completed started stopped queued processed received sent handler
	worker job task batch order payment invoice customer account profile
	login logout signup password reset email notification message queue topic
	partition offset consumer producer broker cluster node shard replica leader
	follower election heartbeat health check ready live probe config reload
	update delete create insert select query index scan table row
	column schema migration version release deploy rollback build artifact image
	container pod service endpoint route gateway proxy upstream downstream client
	server socket port host address dns lookup resolve certificate tls
	handshake auth permission denied granted role policy rule limit quota
	rate throttle backoff circuit breaker open closed half memory heap
	gc pause cpu disk io read write flush sync lock
	unlock mutex deadlock wait acquire released transaction commit abort conflict
	duplicate key value store fetch load save upload download file
	compress decompress encode decode parse serialize validate invalid missing empty
	null field header body status code response latency slow fast
	error warning critical fatal debug trace span metric counter gauge
	histogram alert threshold exceeded normal degraded recovered restarted crashed panic
	signal shutdown graceful draining scheduled cron tick interval expired renewed`)

func init() {
	seen := map[string]bool{}
	for _, w := range vocabulary {
		if strings.Contains(w, rareWord) || strings.Contains(w, commonWord) || seen[w] {
			panic("benchstore: vocabulary word " + w + " would blur the keyword searches")
		}
		seen[w] = true
	}
	if len(vocabulary) != 200 {
		panic(fmt.Sprintf("benchstore: vocabulary has %d words, want 200", len(vocabulary)))
	}
}

// traceID of generated row g: md5-like and derivable, so the trace query
// can pick an existing one without reading the table.
func traceID(g int64) string {
	sum := md5.Sum([]byte("t" + strconv.FormatInt(g, 10)))
	return hex.EncodeToString(sum[:])
}

func userID(n int) string { return fmt.Sprintf("u-%05d", n) }

// insertSQL inserts the generated rows $3..$4 (inclusive): row g at
// $1 + (g + random()) * $2 microseconds, one random instant in each slot
// of $2, so timestamps are uniform over the range and rows arrive in time
// order as real logs do. $5 is the vocabulary.
//
// Word picks use random()^2: low words are frequent, high ones rare, like
// real log text. Sources use random()^1.5: svc-00 gets about 7% of the
// rows, svc-49 about 1.3%.
func insertSQL() string {
	var level strings.Builder
	level.WriteString("CASE")
	for _, c := range levelCuts[:len(levelCuts)-1] {
		fmt.Fprintf(&level, " WHEN r < %g THEN %d", c.upTo, c.code)
	}
	fmt.Fprintf(&level, " ELSE %d END", levelCuts[len(levelCuts)-1].code)

	word := fmt.Sprintf("w[1 + floor(%d * random() ^ 2)::int]", len(vocabulary))
	words := strings.TrimSuffix(strings.Repeat(word+" || ' ' || ", wordsPerMessage), " || ' ' || ")
	regionList := "ARRAY['" + strings.Join(regions, "','") + "']"

	return fmt.Sprintf(`INSERT INTO logs (ts, id, level, source, message, metadata, trace_id)
SELECT $1::timestamptz + (g + random()) * $2::float8 * interval '1 microsecond',
	gen_random_uuid(),
	%s,
	'svc-' || lpad(floor(%d * random() ^ 1.5)::int::text, 2, '0'),
	CASE WHEN random() < %g THEN '%s ' ELSE '' END || %s
		|| ' id=' || floor(random() * 1000000)::int || ' in ' || d || 'ms'
		|| CASE WHEN g %% %d = %d THEN ' %s' ELSE '' END,
	jsonb_build_object('userId', 'u-' || lpad(floor(random() * %d)::int::text, 5, '0'),
		'region', (%s)[1 + floor(random() * %d)::int], 'durationMs', d),
	md5('t' || g)
FROM (SELECT g, random() AS r, floor(2000 * random() ^ 3)::int AS d, $5::text[] AS w
	FROM generate_series($3::bigint, $4::bigint) g) s`,
		level.String(), sources, commonShare, commonWord, words, rareEvery, rareEvery/2, rareWord,
		users, regionList, len(regions))
}

// events makes n events like the SQL rows, numbered from first (which
// decides the trace ids and the rare word), with timestamps spread
// uniformly over [from, from+span).
func events(n int, first int64, from time.Time, span time.Duration, rnd *rand.Rand) []logs.Event {
	out := make([]logs.Event, n)
	for i := range out {
		g := first + int64(i)
		r := rnd.Float64()
		var code int16
		for _, c := range levelCuts {
			if code = c.code; r < c.upTo {
				break
			}
		}
		var msg strings.Builder
		if rnd.Float64() < commonShare {
			msg.WriteString(commonWord + " ")
		}
		for w := range wordsPerMessage {
			if w > 0 {
				msg.WriteByte(' ')
			}
			msg.WriteString(vocabulary[int(float64(len(vocabulary))*math.Pow(rnd.Float64(), 2))])
		}
		d := int(2000 * math.Pow(rnd.Float64(), 3))
		fmt.Fprintf(&msg, " id=%d in %dms", rnd.IntN(1_000_000), d)
		if g%rareEvery == rareEvery/2 {
			msg.WriteString(" " + rareWord)
		}
		meta, _ := json.Marshal(map[string]any{
			"userId":     userID(rnd.IntN(users)),
			"region":     regions[rnd.IntN(len(regions))],
			"durationMs": d,
		})
		out[i] = logs.Event{
			ID:        uuid.New(),
			Timestamp: from.Add(time.Duration(rnd.Int64N(int64(span)))).Truncate(time.Microsecond),
			Level:     logs.AllLevels()[code],
			Source:    fmt.Sprintf("svc-%02d", int(sources*math.Pow(rnd.Float64(), 1.5))),
			Message:   msg.String(),
			Metadata:  meta,
			TraceID:   traceID(g),
		}
	}
	return out
}
