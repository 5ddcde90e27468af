package event

import (
	"strconv"
	"strings"
	"time"

	"github.com/logengine/logengine/store/logs"
)

// Draft is an event as an ingest protocol (OTLP, Loki, Elasticsearch bulk,
// syslog…) decoded it, before validation. ParseDraft writes it as the
// native API's JSON and parses that, so every protocol gets the same
// validation, repair and limits as the native API, and a refused draft has
// a JSON form for the DLQ that `logengine dlq replay` understands.
type Draft struct {
	// Timestamp is when the event happened; the zero time means the time
	// of receipt.
	Timestamp time.Time
	// Level is a level name as ParseLevel takes it.
	Level    string
	Source   string
	Message  string
	Metadata Object
	TraceID  string
	// ID is a UUID the client chose, so that its retries are stored
	// once; empty assigns one.
	ID string
}

// AppendJSON appends the draft as the native API's JSON object.
func (d *Draft) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"level":`...)
	dst = appendString(dst, d.Level)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, d.Source)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, d.Message)
	if !d.Timestamp.IsZero() {
		dst = append(dst, `,"timestamp":"`...)
		dst = d.Timestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if d.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, d.ID)
	}
	if d.TraceID != "" {
		dst = append(dst, `,"traceId":`...)
		dst = appendString(dst, d.TraceID)
	}
	if d.Metadata.Len() > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = d.Metadata.AppendJSON(dst)
	}
	return append(dst, '}')
}

// ParseDraft validates the draft as Parse validates the native API's JSON.
// raw is that JSON, what the DLQ keeps of a refused draft.
func ParseDraft(d *Draft, def Defaults, lim Limits) (ev logs.Event, raw []byte, err error) {
	raw = d.AppendJSON(make([]byte, 0, 96+len(d.Message)+len(d.Source)+len(d.TraceID)+d.Metadata.size))
	ev, err = Parse(raw, def, lim)
	return ev, raw, err
}

// Object is a JSON object built member by member: a key set again keeps
// its first place and takes the new value, as a JSON decoder would read a
// repeated key.
type Object struct {
	keys  []string
	vals  [][]byte
	index map[string]int // built once the object has many keys
	size  int
}

// objectIndexFrom is the key count from which Set looks keys up in a map
// rather than by a scan, so that a hostile number of keys costs linear time.
const objectIndexFrom = 16

// Len is the number of distinct keys.
func (o *Object) Len() int { return len(o.keys) }

// Set sets key to raw, which must be one valid JSON value.
func (o *Object) Set(key string, raw []byte) {
	if i, ok := o.find(key); ok {
		o.size += len(raw) - len(o.vals[i])
		o.vals[i] = raw
		return
	}
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, raw)
	o.size += len(key) + len(raw) + 4
	if o.index != nil {
		o.index[key] = len(o.keys) - 1
	} else if len(o.keys) >= objectIndexFrom {
		o.index = make(map[string]int, 2*len(o.keys))
		for i, k := range o.keys {
			o.index[k] = i
		}
	}
}

// SetString sets key to the JSON string of s.
func (o *Object) SetString(key, s string) { o.Set(key, appendString(nil, s)) }

// SetInt sets key to the JSON number n.
func (o *Object) SetInt(key string, n int64) { o.Set(key, strconv.AppendInt(nil, n, 10)) }

// Get returns the JSON value of key.
func (o *Object) Get(key string) ([]byte, bool) {
	if i, ok := o.find(key); ok {
		return o.vals[i], true
	}
	return nil, false
}

func (o *Object) find(key string) (int, bool) {
	if o.index != nil {
		i, ok := o.index[key]
		return i, ok
	}
	for i, k := range o.keys {
		if k == key {
			return i, true
		}
	}
	return 0, false
}

// AppendJSON appends the object's JSON text.
func (o *Object) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, k := range o.keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = append(dst, o.vals[i]...)
	}
	return append(dst, '}')
}

// AppendString appends s as a JSON string (invalid UTF-8 becomes U+FFFD).
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// LevelFromText reads the level names the shippers send: those of the usual logging libraries and
// of syslog (err, crit, emerg, notice…), in any case.
func LevelFromText(text string) (logs.Level, bool) {
	if l, ok := logs.ParseLevel(text); ok {
		return l, true
	}
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "trc", "verbose", "finest", "finer":
		return logs.LevelTrace, true
	case "dbg", "fine", "debug1", "debug2", "debug3":
		return logs.LevelDebug, true
	case "inf", "information", "informational", "notice", "info1":
		return logs.LevelInfo, true
	case "wrn", "warnings":
		return logs.LevelWarn, true
	case "err", "eror", "severe", "exception":
		return logs.LevelError, true
	case "crit", "critical", "alert", "emerg", "emergency", "panic", "fatal1", "ftl":
		return logs.LevelFatal, true
	}
	return 0, false
}
