package loki_test

import (
	"reflect"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/logengine/logengine/ingest/loki"
)

func TestParseLabels(t *testing.T) {
	for in, want := range map[string][]loki.Label{
		`{}`:                                nil,
		`{app="api"}`:                       {{"app", "api"}},
		` { app = "api" , env="prod" } `:    {{"app", "api"}, {"env", "prod"}},
		`{msg="say \"hi\"\n", path="a\\b"}`: {{"msg", "say \"hi\"\n"}, {"path", `a\b`}},
		`{a="x",}`:                          {{"a", "x"}},
	} {
		got, err := loki.ParseLabels(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseLabels(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{`app="x"`, `{app=x}`, `{app="x}`, `{="x"}`, `{a="x" b="y"}`} {
		if got, err := loki.ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) = %v, want an error", bad, got)
		}
	}
}

// A decompressed size over the limit is refused before decompressing.
func TestDecodeProtobufBoundsTheDecompressedSize(t *testing.T) {
	body := snappy.Encode(nil, make([]byte, 1<<20))
	if _, err := loki.DecodeProtobuf(body, 1<<19); err == nil {
		t.Fatal("a 1 MiB request passed a 512 KiB limit")
	}
}

func FuzzDecodeProtobuf(f *testing.F) {
	f.Add(snappy.Encode(nil, []byte("\x0a\x10\x0a\x0c{app=\"api\"}\x12\x00")))
	f.Add([]byte("\xff\x01\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = loki.DecodeProtobuf(b, 1<<20)
		_, _ = loki.DecodeProtobuf(snappy.Encode(nil, b), 1<<20)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"streams":[{"stream":{"app":"x"},"values":[["1","l",{"k":"v"}]]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = loki.DecodeJSON(b)
		_, _ = loki.ParseLabels(string(b))
	})
}
