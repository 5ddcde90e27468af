package query

import (
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
)

// TestPageRows reads the row count from the footer of a page the page
// writer made, however the content's messages look.
func TestPageRows(t *testing.T) {
	w := &pageWriter{max: 1 << 20}
	w.buf.WriteString(`{"content":[`)
	for i := range 3 {
		e := logs.Event{Timestamp: time.Unix(int64(i), 0), Level: logs.LevelInfo, Source: "s",
			Message: `"numberOfElements":999 in a message`}
		if ok, err := w.add(e); !ok || err != nil {
			t.Fatalf("add: %v %v", ok, err)
		}
	}
	body, err := w.finish(logs.Search{Size: 20}, 3, false, &logs.Cursor{TS: time.Unix(9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := pageRows(body); !ok || n != 3 {
		t.Fatalf("pageRows = %d, %v; want 3\n%s", n, ok, body)
	}
	if _, ok := pageRows([]byte(`{"error":"x"}`)); ok {
		t.Fatal("an answer without a footer has no row count")
	}
}
