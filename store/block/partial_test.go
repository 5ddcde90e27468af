package block

import (
	"reflect"
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
)

// A reader given only the header and the spans BriefSpans names answers
// Briefs and time, level and source filters as the whole block does, and
// refuses anything else.
func TestBriefReaderFromSpans(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	for _, n := range []int{1, 5000} {
		evs, _ := Realistic(n, 7)
		blk, err := codec.Encode(evs)
		if err != nil {
			t.Fatal(err)
		}
		data := blk.Data
		spans, err := BriefSpans(data[:min(len(data), HeadBytes)], len(data))
		if err != nil {
			t.Fatal(err)
		}
		partial := make([]byte, len(data))
		copy(partial, data[:min(len(data), HeadBytes)])
		fetched := 0
		for _, s := range spans {
			copy(partial[s.Off:s.Off+s.Len], data[s.Off:s.Off+s.Len])
			fetched += s.Len
		}
		if n > 1 && fetched*5 > len(data) {
			t.Errorf("%d rows: the spans are %d of %d bytes, want a small part", n, fetched, len(data))
		}
		full, err := codec.NewReader(data)
		if err != nil {
			t.Fatal(err)
		}
		brief, err := codec.NewBriefReader(partial)
		if err != nil {
			t.Fatal(err)
		}
		mid := evs[len(evs)/2].Timestamp
		f := Filter{Start: mid.Add(-time.Minute), End: mid.Add(time.Minute), Levels: []logs.Level{logs.LevelInfo, logs.LevelError}, Sources: []string{evs[0].Source}}
		wantRows, err := full.Match(f)
		if err != nil {
			t.Fatal(err)
		}
		gotRows, err := brief.Match(f)
		if err != nil || !reflect.DeepEqual(gotRows, wantRows) {
			t.Fatalf("%d rows: Match %v (%v), want %v", n, gotRows, err, wantRows)
		}
		all := make([]int, full.Len())
		for i := range all {
			all[i] = i
		}
		want, err := full.Briefs(all)
		if err != nil {
			t.Fatal(err)
		}
		got, err := brief.Briefs(all)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%d rows: briefs differ (%v)", n, err)
		}
		if _, err := brief.Events(all); err == nil {
			t.Errorf("%d rows: a brief reader decoded whole events", n)
		}
	}
	if _, err := BriefSpans([]byte{Version, 1, 1, byte(colTime), encRaw, 200, 1, 200, 1}, 10); err == nil {
		t.Error("a column past the block's end gave no error")
	}
}
