package block

import (
	"fmt"
	"testing"

	"github.com/logengine/logengine/store/logs"
)

// rawSize is the bytes of events' fields, the unit of SetBytes.
func rawSize(events []logs.Event) int64 {
	var n int64
	for _, e := range events {
		n += int64(16 + 8 + 1 + len(e.Source) + len(e.Message) + len(e.Metadata) + len(e.TraceID))
	}
	return n
}

func reportLogs(b *testing.B, perOp int) {
	b.ReportMetric(float64(perOp)*float64(b.N)/b.Elapsed().Seconds(), "logs/s")
}

var benchSizes = []int{1000, 20000}

func BenchmarkEncode(b *testing.B) {
	for _, comp := range []struct {
		name string
		c    Compression
	}{{"default", CompressionDefault}, {"better", CompressionBetter}, {"best", CompressionBest}} {
		codec := newTestCodec(b, comp.c)
		for _, n := range benchSizes {
			events, _ := Realistic(n, 1)
			b.Run(fmt.Sprintf("%s/%d", comp.name, n), func(b *testing.B) {
				b.SetBytes(rawSize(events))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := codec.Encode(events); err != nil {
						b.Fatal(err)
					}
				}
				reportLogs(b, n)
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	codec := newTestCodec(b, CompressionDefault)
	for _, n := range benchSizes {
		events, _ := Realistic(n, 1)
		blk, err := codec.Encode(events)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(rawSize(events))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.Decode(blk.Data); err != nil {
					b.Fatal(err)
				}
			}
			reportLogs(b, n)
		})
	}
}

// BenchmarkMatch reads a 20,000-log block for one query, from its bytes:
// a keyword (messages decoded and scanned), a level and source (only the
// small columns), a metadata pair.
func BenchmarkMatch(b *testing.B) {
	codec := newTestCodec(b, CompressionDefault)
	events, rare := Realistic(20000, 1)
	blk, err := codec.Encode(events)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    Filter
	}{
		{"keyword", Filter{Keyword: rare[0]}},
		{"keyword-common", Filter{Keyword: "Completed"}},
		{"level-source", Filter{Levels: []logs.Level{logs.LevelError}, Sources: []string{events[0].Source}}},
		{"meta", Filter{Meta: []logs.MetaMatch{{Key: "status", Value: "503"}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(rawSize(events))
			b.ReportAllocs()
			for b.Loop() {
				r, err := codec.NewReader(blk.Data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Match(c.f); err != nil {
					b.Fatal(err)
				}
			}
			reportLogs(b, len(events))
		})
	}
}

func BenchmarkMayContain(b *testing.B) {
	codec := newTestCodec(b, CompressionDefault)
	events, rare := Realistic(20000, 1)
	blk, err := codec.Encode(events)
	if err != nil {
		b.Fatal(err)
	}
	hashes := KeywordHashes(rare[0])
	b.Run("keyword", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			MayContain(blk.Summary.MessageBloom, hashes)
		}
	})
	b.Run("keyword-with-hashing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			MayContain(blk.Summary.MessageBloom, KeywordHashes(rare[0]))
		}
	})
}

// BenchmarkMerge merges twenty blocks of 1,000 logs into one of 20,000.
func BenchmarkMerge(b *testing.B) {
	codec := newTestCodec(b, CompressionDefault)
	events, _ := Realistic(20000, 1)
	var datas [][]byte
	for i := 0; i < len(events); i += 1000 {
		blk, err := codec.Encode(events[i : i+1000])
		if err != nil {
			b.Fatal(err)
		}
		datas = append(datas, blk.Data)
	}
	b.SetBytes(rawSize(events))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Merge(datas...); err != nil {
			b.Fatal(err)
		}
	}
	reportLogs(b, len(events))
}
