package block

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/logengine/logengine/store/logs"
)

func TestMerge(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	all, _ := Realistic(3000, 6)

	// Many small fresh blocks of interleaved time ranges, as consumers on
	// several partitions write them.
	rng := rand.New(rand.NewPCG(1, 1))
	parts := make([][]logs.Event, 40)
	for _, e := range all {
		p := rng.IntN(len(parts))
		parts[p] = append(parts[p], e)
	}
	var datas [][]byte
	for _, p := range parts {
		b, err := codec.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		datas = append(datas, b.Data)
	}
	m, err := codec.Merge(datas...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, got, stored(all))
	whole, err := codec.Encode(all)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Data, whole.Data) {
		t.Error("merging blocks gives other bytes than encoding their rows at once")
	}
	s, w := m.Summary, whole.Summary
	if s.Rows != w.Rows || s.Levels != w.Levels || !s.MinTime.Equal(w.MinTime) || !s.MaxTime.Equal(w.MaxTime) ||
		!slices.Equal(s.Sources, w.Sources) || !slices.Equal(s.MessageBloom, w.MessageBloom) ||
		!slices.Equal(s.TraceBloom, w.TraceBloom) || !slices.Equal(s.MetaBloom, w.MetaBloom) {
		t.Error("the merged summary differs from the summary of the same rows")
	}
}

// Rows with equal (timestamp, id) are all kept, in the order of the blocks
// given: the counts already taken from the inputs stay true.
func TestMergeKeepsEqualKeysInBlockOrder(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	a := ev(t0, "first")
	b := a
	b.Message = "second"
	later := ev(t0.Add(-1), "earlier row")
	b1, err := codec.Encode([]logs.Event{a})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := codec.Encode([]logs.Event{b, later})
	if err != nil {
		t.Fatal(err)
	}
	m, err := codec.Merge(b1.Data, b2.Data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range got {
		msgs = append(msgs, e.Message)
	}
	if want := []string{"earlier row", "first", "second"}; !slices.Equal(msgs, want) || m.Summary.Rows != 3 {
		t.Errorf("merged %q (%d rows), want %q", msgs, m.Summary.Rows, want)
	}
}

func TestMergeRejects(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	if _, err := codec.Merge(); !errors.Is(err, ErrEmpty) {
		t.Errorf("Merge() = %v, want ErrEmpty", err)
	}
	b, err := codec.Encode([]logs.Event{ev(t0, "x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.Merge(b.Data, b.Data[:len(b.Data)-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Merge of a truncated block = %v, want ErrCorrupt", err)
	}
}
