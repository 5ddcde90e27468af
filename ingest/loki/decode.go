package loki

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// tooLarge is a body whose decompressed size is over the limit.
type tooLarge struct{ size, limit int64 }

func (t *tooLarge) Error() string {
	return fmt.Sprintf("the push request is %d bytes once decompressed, more than the limit of %d bytes (--max-body-bytes)", t.size, t.limit)
}

// DecodeProtobuf reads a snappy-compressed (block format) PushRequest;
// maxBytes bounds its decompressed size.
//
//	message PushRequest { repeated Stream streams = 1; }
//	message Stream { string labels = 1; repeated Entry entries = 2; uint64 hash = 3; }
//	message Entry { google.protobuf.Timestamp timestamp = 1; string line = 2;
//	                repeated LabelPair structuredMetadata = 3; }
//	message LabelPair { string name = 1; string value = 2; }
func DecodeProtobuf(body []byte, maxBytes int64) ([]Stream, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if int64(n) > maxBytes {
		return nil, &tooLarge{size: int64(n), limit: maxBytes}
	}
	raw, err := snappy.Decode(make([]byte, n), body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	var streams []Stream
	err = fields(raw, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		s, err := decodeStream(v)
		streams = append(streams, s)
		return err
	})
	return streams, err
}

func decodeStream(b []byte) (Stream, error) {
	var s Stream
	err := fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			var err error
			if s.Labels, err = ParseLabels(string(v)); err != nil {
				return fmt.Errorf("stream labels %q: %w", v, err)
			}
		case 2:
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			s.Entries = append(s.Entries, e)
		}
		return nil
	})
	return s, err
}

func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	err := fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			var sec, nanos int64
			if err := fields(v, func(num protowire.Number, v []byte) error {
				x, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return errors.New("timestamp: bad varint")
				}
				switch num {
				case 1:
					sec = int64(x)
				case 2:
					nanos = int64(int32(x))
				}
				return nil
			}); err != nil {
				return err
			}
			e.Time = time.Unix(sec, nanos)
		case 2:
			e.Line = string(v)
		case 3:
			var l Label
			if err := fields(v, func(num protowire.Number, v []byte) error {
				switch num {
				case 1:
					l.Name = string(v)
				case 2:
					l.Value = string(v)
				}
				return nil
			}); err != nil {
				return err
			}
			e.Metadata = append(e.Metadata, l)
		}
		return nil
	})
	return e, err
}

// fields calls f with each field of a message: the bytes of a
// length-delimited field, the varint's own bytes for a varint; fields of
// other wire types are skipped.
func fields(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("protobuf: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b)
			if n >= 0 {
				v = b[:n]
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("protobuf: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if v != nil {
			if err := f(num, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// ParseLabels reads a stream's labels as Loki writes them:
// {name="value", other="quoted \"value\""}.
func ParseLabels(s string) ([]Label, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, errors.New(`labels must be written as {name="value", …}`)
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	var out []Label
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("a label without a name or =")
		}
		name := strings.TrimSpace(s[:eq])
		s = strings.TrimSpace(s[eq+1:])
		if !strings.HasPrefix(s, `"`) {
			return nil, fmt.Errorf("label %s: the value must be quoted", name)
		}
		end := 1
		for end < len(s) && s[end] != '"' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(s) {
			return nil, fmt.Errorf("label %s: unterminated value", name)
		}
		value, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return nil, fmt.Errorf("label %s: %w", name, err)
		}
		out = append(out, Label{Name: name, Value: value})
		s = strings.TrimSpace(s[end+1:])
		if rest, ok := strings.CutPrefix(s, ","); ok {
			s = strings.TrimSpace(rest)
		} else if s != "" {
			return nil, fmt.Errorf("after label %s: expected , or }", name)
		}
	}
	return out, nil
}

// jsonPush is the JSON push body:
// {"streams":[{"stream":{"label":"value"},"values":[["<unix ns>","line",{"key":"value"}]]}]}
type jsonPush struct {
	Streams []struct {
		Stream map[string]string   `json:"stream"`
		Values [][]json.RawMessage `json:"values"`
	} `json:"streams"`
}

// DecodeJSON reads a JSON push request.
func DecodeJSON(body []byte) ([]Stream, error) {
	var p jsonPush
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	streams := make([]Stream, len(p.Streams))
	for i, js := range p.Streams {
		s := &streams[i]
		for k, v := range js.Stream {
			s.Labels = append(s.Labels, Label{Name: k, Value: v})
		}
		sortLabels(s.Labels)
		for j, v := range js.Values {
			if len(v) < 2 || len(v) > 3 {
				return nil, fmt.Errorf("stream %d, value %d: must be [\"<unix nanoseconds>\", \"<line>\"] or with a structured metadata object", i, j)
			}
			var ts, line string
			if err := json.Unmarshal(v[0], &ts); err != nil {
				return nil, fmt.Errorf("stream %d, value %d: the timestamp must be a string of unix nanoseconds", i, j)
			}
			ns, err := strconv.ParseInt(ts, 10, 64)
			if err != nil || ns < 0 {
				return nil, fmt.Errorf("stream %d, value %d: timestamp %q is not unix nanoseconds", i, j, ts)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, fmt.Errorf("stream %d, value %d: the line must be a string", i, j)
			}
			e := Entry{Time: time.Unix(0, ns), Line: line}
			if len(v) == 3 {
				var meta map[string]string
				if err := json.Unmarshal(v[2], &meta); err != nil {
					return nil, fmt.Errorf("stream %d, value %d: structured metadata must be an object of strings", i, j)
				}
				for k, v := range meta {
					e.Metadata = append(e.Metadata, Label{Name: k, Value: v})
				}
				sortLabels(e.Metadata)
			}
			s.Entries = append(s.Entries, e)
		}
	}
	return streams, nil
}

// sortLabels orders labels read from a JSON object, which has no order,
// so the metadata is the same whatever order the decoder gave.
func sortLabels(ls []Label) {
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
}
