package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/store/logs"
	"github.com/spf13/pflag"
)

// Limits bound what one event may carry. Every field is configurable.
type Limits struct {
	MaxMessageBytes  int
	MaxSourceBytes   int
	MaxMetadataKeys  int
	MaxMetadataBytes int
	MaxTraceIDBytes  int
	// MaxFutureSkew is how far past the time of receipt a timestamp may be.
	MaxFutureSkew time.Duration
	// Retention is the store's retention (--retention), set by the caller:
	// an event older than that is refused, as the store would delete it at
	// once, unless AcceptExpired. 0 refuses no past time.
	Retention     time.Duration
	AcceptExpired bool
}

// DefaultLimits are the limits API.md documents.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:  64 << 10,
		MaxSourceBytes:   255,
		MaxMetadataKeys:  64,
		MaxMetadataBytes: 16 << 10,
		MaxTraceIDBytes:  128,
		MaxFutureSkew:    5 * time.Minute,
	}
}

// RegisterFlags binds the limits to flags whose defaults are l's values.
func (l *Limits) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&l.MaxMessageBytes, "max-message-bytes", l.MaxMessageBytes, "longest message of one event")
	fs.IntVar(&l.MaxSourceBytes, "max-source-bytes", l.MaxSourceBytes, "longest source of one event")
	fs.IntVar(&l.MaxMetadataKeys, "max-metadata-keys", l.MaxMetadataKeys, "most metadata keys of one event")
	fs.IntVar(&l.MaxMetadataBytes, "max-metadata-bytes", l.MaxMetadataBytes, "largest metadata object of one event")
	fs.IntVar(&l.MaxTraceIDBytes, "max-trace-id-bytes", l.MaxTraceIDBytes, "longest traceId of one event")
	fs.DurationVar(&l.MaxFutureSkew, "max-future-skew", l.MaxFutureSkew, "how far in the future an event's timestamp may be")
	fs.BoolVar(&l.AcceptExpired, "accept-older-than-retention", l.AcceptExpired,
		"accept events whose timestamp is older than --retention (the store deletes them within --maintenance-interval); refused with 400 otherwise")
}

// Validate reports every limit that cannot work, naming its flag.
func (l *Limits) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{
		"max-message-bytes":  int64(l.MaxMessageBytes),
		"max-source-bytes":   int64(l.MaxSourceBytes),
		"max-metadata-keys":  int64(l.MaxMetadataKeys),
		"max-metadata-bytes": int64(l.MaxMetadataBytes),
		"max-trace-id-bytes": int64(l.MaxTraceIDBytes),
	})
	p.NotNegative(map[string]time.Duration{"max-future-skew": l.MaxFutureSkew})
	return p.Err()
}

// FieldError names one problem with one field of an event.
type FieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// Invalid is the error of an event that fails validation.
type Invalid []FieldError

func (v Invalid) Error() string {
	parts := make([]string, len(v))
	for i, fe := range v {
		parts[i] = fe.Field + ": " + fe.Problem
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// Defaults fill what the client left out.
type Defaults struct {
	Now     time.Time // time of receipt
	TraceID string    // from traceparent or X-Correlation-ID
}

// Parse decodes and validates one event from its JSON object. A nil error
// means the event is normalised and ready for Kafka; otherwise the error
// is Invalid and names each problem.
func Parse(raw []byte, def Defaults, lim Limits) (logs.Event, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return logs.Event{}, Invalid{{Field: "body", Problem: "an event must be a JSON object"}}
	}
	r := reader{data: raw}
	var f fields
	if !r.event(&f) || !r.atEnd() {
		return logs.Event{}, Invalid{{Field: "body", Problem: "malformed JSON: " + syntaxError(raw).Error()}}
	}
	ev, errs := f.build(def, lim)
	if errs != nil {
		return logs.Event{}, errs
	}
	return ev, nil
}

// syntaxError is encoding/json's description of what is wrong with b,
// which reader found malformed: clients keep reading the same messages.
func syntaxError(b []byte) error {
	var v json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}

// rawValue is one member's JSON value as it was sent; flags describe a
// string's content (see reader.str).
type rawValue struct {
	b     []byte
	flags uint8
}

// present is false for a missing member and for null.
func (v rawValue) present() bool { return len(v.b) > 0 && string(v.b) != "null" }

func (v rawValue) isString() bool { return len(v.b) > 0 && v.b[0] == '"' }

// text is the decoded text of a string value; a slice of the input when
// the string needs no decoding.
func (v rawValue) text() []byte {
	if v.flags == 0 {
		return v.b[1 : len(v.b)-1]
	}
	return appendUnquoted(nil, v.b, v.flags)
}

// fields are the members of an event object that Parse reads. Keys match
// as encoding/json matches them to struct fields (case-insensitively), and
// a repeated key's last value wins.
type fields struct {
	id, timestamp, level, source, message, metadata, traceID rawValue
	// metaKeys counts the metadata object's keys as sent; metaSpaced is
	// whether it has white space to remove.
	metaKeys   int
	metaSpaced bool
}

// event reads the object at pos into f, checking all of it.
func (r *reader) event(f *fields) bool {
	return r.members(func(key []byte, kflags uint8) bool {
		dst := f.member(key, kflags)
		r.ws()
		start := r.pos
		var flags uint8
		switch {
		case r.pos < len(r.data) && r.data[r.pos] == '"':
			fl, ok := r.str()
			if !ok {
				return false
			}
			flags = fl
		case dst == &f.metadata && r.pos < len(r.data) && r.data[r.pos] == '{':
			// Learnt while checking it, so that usual metadata is then
			// copied without another look.
			keys := 0
			r.spaced = false
			if !r.members(func([]byte, uint8) bool { keys++; r.ws(); return r.value() }) {
				return false
			}
			f.metaKeys, f.metaSpaced = keys, r.spaced
		default:
			if !r.value() {
				return false
			}
		}
		if dst != nil {
			*dst = rawValue{b: r.data[start:r.pos], flags: flags}
		}
		return true
	})
}

// member is where the value of the key (a raw string) goes, or nil.
func (f *fields) member(key []byte, kflags uint8) *rawValue {
	var buf [32]byte
	k := key[1 : len(key)-1]
	if kflags != 0 {
		k = appendUnquoted(buf[:0], key, kflags)
	}
	switch string(k) { // the usual spelling, without folding
	case "id":
		return &f.id
	case "timestamp":
		return &f.timestamp
	case "level":
		return &f.level
	case "source":
		return &f.source
	case "message":
		return &f.message
	case "metadata":
		return &f.metadata
	case "traceId":
		return &f.traceID
	}
	for _, m := range [...]struct {
		name string
		v    *rawValue
	}{
		{"id", &f.id}, {"timestamp", &f.timestamp}, {"level", &f.level}, {"source", &f.source},
		{"message", &f.message}, {"metadata", &f.metadata}, {"traceId", &f.traceID},
	} {
		if keyIs(k, m.name) {
			return m.v
		}
	}
	return nil
}

// The text members, in the order their decoded text is laid out.
const (
	txtMessage = iota
	txtLevel
	txtSource
	txtTimestamp
	txtID
	txtTraceID
	numTexts
)

// build validates the members and makes the event, or says every problem.
func (f *fields) build(def Defaults, lim Limits) (logs.Event, Invalid) {
	// Every string member is decoded into one buffer and converted to one
	// string: the event's texts are substrings of it, one allocation.
	var (
		scratch [512]byte
		spans   [numTexts][2]int
	)
	buf := scratch[:0]
	for i, v := range [numTexts]rawValue{f.message, f.level, f.source, f.timestamp, f.id, f.traceID} {
		if v.isString() {
			spans[i][0] = len(buf)
			buf = appendUnquoted(buf, v.b, v.flags)
			spans[i][1] = len(buf)
		}
	}
	texts := string(buf)

	var errs Invalid
	fail := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	// str is a string member's text; a missing member is the empty string.
	str := func(v rawValue, text int, field string) (string, bool) {
		if !v.present() {
			return "", true
		}
		if !v.isString() {
			fail(field, "must be a string, not %s", jsonKind(v.b))
			return "", false
		}
		return texts[spans[text][0]:spans[text][1]], true
	}
	// Microseconds: what PostgreSQL stores, so the event reads back equal.
	ev := logs.Event{ReceivedAt: def.Now.UTC().Truncate(time.Microsecond)}

	if msg, ok := str(f.message, txtMessage, "message"); ok {
		msg = clean(msg) // before the length check: a repair can lengthen it
		switch {
		case strings.TrimSpace(msg) == "":
			fail("message", "is required and must not be blank")
		case len(msg) > lim.MaxMessageBytes:
			fail("message", "is %d bytes, more than the limit of %d", len(msg), lim.MaxMessageBytes)
		default:
			ev.Message = msg
		}
	}
	if lvl, ok := str(f.level, txtLevel, "level"); ok {
		if l, known := parseLevel(lvl); known {
			ev.Level = l
		} else if strings.TrimSpace(lvl) == "" {
			fail("level", "is required; one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL")
		} else {
			fail("level", "unknown level %q; use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL", lvl)
		}
	}
	if src, ok := str(f.source, txtSource, "source"); ok {
		src = clean(strings.TrimSpace(src))
		switch {
		case src == "":
			fail("source", "is required and must not be blank")
		case len(src) > lim.MaxSourceBytes:
			fail("source", "is %d bytes, more than the limit of %d", len(src), lim.MaxSourceBytes)
		default:
			ev.Source = src
		}
	}
	ev.Timestamp = ev.ReceivedAt
	if f.timestamp.present() {
		if s, ok := str(f.timestamp, txtTimestamp, "timestamp"); ok {
			if ts, problem := ParseTimestamp(s, def.Now, lim); problem != "" {
				fail("timestamp", "%s", problem)
			} else {
				ev.Timestamp = ts
			}
		}
	}
	if f.metadata.present() {
		if meta, problem := f.metadataValue(lim); problem != "" {
			fail("metadata", "%s", problem)
		} else {
			ev.Metadata = meta
		}
	}
	ev.ID = uuid.Nil
	if f.id.present() {
		if s, ok := str(f.id, txtID, "id"); ok {
			id, err := uuid.Parse(s)
			if err != nil || id == uuid.Nil {
				fail("id", "must be a UUID")
			} else {
				// The client chose it to retry safely: the store keeps
				// one event per such id.
				ev.ID, ev.ClientID = id, true
			}
		}
	}
	if ev.ID == uuid.Nil && len(errs) == 0 {
		id, err := uuid.NewV7()
		if err != nil {
			id = uuid.New()
		}
		ev.ID = id
	}
	ev.TraceID = def.TraceID
	if f.traceID.present() {
		if s, ok := str(f.traceID, txtTraceID, "traceId"); ok {
			s = clean(strings.TrimSpace(s))
			if len(s) > lim.MaxTraceIDBytes {
				fail("traceId", "is longer than %d bytes", lim.MaxTraceIDBytes)
			} else if s != "" {
				ev.TraceID = s
			}
		}
	}
	if len(errs) > 0 {
		return logs.Event{}, errs
	}
	return ev, nil
}

// parseLevel is logs.ParseLevel, quicker for a name already as written.
func parseLevel(s string) (logs.Level, bool) {
	for l := range logs.Level(logs.NumLevels) {
		if s == l.String() {
			return l, true
		}
	}
	return logs.ParseLevel(s)
}

// clean repairs what PostgreSQL text cannot hold: a NUL becomes U+FFFD, as
// invalid UTF-8 already has by the JSON decoder. Repairing keeps the log
// readable instead of rejecting a whole event for one byte.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// metadataValue checks the metadata object and returns its compact form,
// in a buffer of its own.
func (f *fields) metadataValue(lim Limits) ([]byte, string) {
	raw := f.metadata.b
	if raw[0] != '{' {
		return nil, "must be a JSON object, not " + jsonKind(raw)
	}
	if len(raw) > lim.MaxMetadataBytes {
		return nil, fmt.Sprintf("is %d bytes, more than the limit of %d", len(raw), lim.MaxMetadataBytes)
	}
	if f.metaKeys > lim.MaxMetadataKeys {
		// Keys are counted once decoded: a repeated key is one key.
		if n := distinctKeys(raw); n > lim.MaxMetadataKeys {
			return nil, fmt.Sprintf("has %d keys, more than the limit of %d", n, lim.MaxMetadataKeys)
		}
	}
	// Without an exponent a number has at most len(raw) digits, which
	// numeric holds when raw is short.
	if len(raw) > maxNumericScale || bytes.ContainsAny(raw, "eE") {
		if num, ok := unstorableNumber(raw); ok {
			return nil, numberProblem(num)
		}
	}
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		// The common case: nothing jsonb could refuse.
		if !f.metaSpaced {
			return bytes.Clone(raw), ""
		}
		return compact(make([]byte, 0, len(raw)), raw), ""
	}
	out, problem := normaliseMetadata(raw)
	if problem == "" && len(out) > lim.MaxMetadataBytes {
		problem = fmt.Sprintf("is %d bytes once repaired, more than the limit of %d", len(out), lim.MaxMetadataBytes)
	}
	return out, problem
}

// compact appends the checked JSON value src without the white space
// between tokens.
func compact(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			for i++; src[i] != '"'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}

// distinctKeys counts the different keys of the checked object raw, once
// decoded.
func distinctKeys(raw []byte) int {
	seen := map[string]struct{}{}
	r := reader{data: raw}
	r.members(func(key []byte, flags uint8) bool {
		seen[string(appendUnquoted(nil, key, flags))] = struct{}{}
		r.ws()
		return r.value()
	})
	return len(seen)
}

// normaliseMetadata re-encodes metadata holding escapes or invalid UTF-8:
// decoding repairs invalid UTF-8 and unpaired surrogates (both refused by
// jsonb) to U+FFFD, as in the message; a NUL character is refused, since
// jsonb cannot hold it and rewriting structured data silently would mislead.
// The form is what encoding/json gives for the value decoded into any and
// encoded again: keys sorted, the last of a repeated key kept, numbers as
// sent.
func normaliseMetadata(raw []byte) ([]byte, string) {
	r := reader{data: raw}
	out, nul := normalise(&r, nil)
	if nul {
		return nil, "must not contain the NUL character (\\u0000)"
	}
	return out, ""
}

// normalise appends the normal form of the checked value at r.pos and
// reports whether a string kept in it holds NUL.
func normalise(r *reader, dst []byte) ([]byte, bool) {
	switch r.data[r.pos] {
	case '{':
		type member struct {
			key, val []byte
			nul      bool
		}
		var ms []member
		r.members(func(key []byte, flags uint8) bool {
			k := appendUnquoted(nil, key, flags)
			r.ws()
			v, nul := normalise(r, nil)
			ms = append(ms, member{key: k, val: v, nul: nul || bytes.IndexByte(k, 0) >= 0})
			return true
		})
		slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
		dst = append(dst, '{')
		nul, first := false, true
		for i, m := range ms {
			if i+1 < len(ms) && bytes.Equal(m.key, ms[i+1].key) {
				continue // a later value of the same key replaces this one
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendString(dst, m.key)
			dst = append(dst, ':')
			dst = append(dst, m.val...)
			nul = nul || m.nul
		}
		return append(dst, '}'), nul
	case '[':
		r.open()
		dst = append(dst, '[')
		nul := false
		for i := 0; r.next() != ']'; i++ {
			if i > 0 {
				dst = append(dst, ',')
				r.pos++ // the comma
				r.ws()
			}
			var n bool
			dst, n = normalise(r, dst)
			nul = nul || n
		}
		r.pos++
		r.depth--
		return append(dst, ']'), nul
	case '"':
		start := r.pos
		flags, _ := r.str()
		s := appendUnquoted(nil, r.data[start:r.pos], flags)
		return appendString(dst, s), bytes.IndexByte(s, 0) >= 0
	default: // a number or a literal, kept as sent
		start := r.pos
		r.value()
		return append(dst, r.data[start:r.pos]...), false
	}
}

// ParseTimestamp reads an event's timestamp: RFC 3339 with a zone (Z or an
// offset from -23:59 to +23:59), from year 1 to 9999, at most
// lim.MaxFutureSkew after now and, when lim.Retention is set and
// lim.AcceptExpired is not, not older than the retention. A leap second
// (23:59:60 UTC) is read as the last microsecond of its minute, keeping
// its order. The time is UTC, truncated to the microsecond PostgreSQL
// keeps; a non-empty problem says why s is refused.
func ParseTimestamp(s string, now time.Time, lim Limits) (time.Time, string) {
	const rfc = "must be RFC 3339, such as 2024-01-15T10:30:00Z"
	leap := false
	// Go's parser refuses second 60 and takes a +24:00 offset; RFC 3339
	// is the other way round.
	if len(s) >= len("2006-01-02T15:04:60") && s[10] == 'T' && s[16] == ':' && s[17:19] == "60" {
		s, leap = s[:17]+"59"+s[19:], true
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, rfc
	}
	if z := s[len(s)-1]; z != 'Z' && z != 'z' {
		if off := s[len(s)-len("07:00"):]; off[0] > '2' || (off[0] == '2' && off[1] > '3') || off[3] > '5' {
			return time.Time{}, "has a zone offset out of range: " + rfc + " (offsets -23:59 to +23:59)"
		}
	}
	ts = ts.UTC()
	if leap {
		if ts.Hour() != 23 || ts.Minute() != 59 {
			return time.Time{}, "has second 60, which only a leap second at 23:59:60 UTC has"
		}
		ts = ts.Truncate(time.Second).Add(time.Second - time.Microsecond)
	}
	switch {
	case ts.After(now.Add(lim.MaxFutureSkew)):
		return time.Time{}, fmt.Sprintf("is more than %s in the future", lim.MaxFutureSkew)
	case ts.Year() < 1 || ts.Year() > 9999 || ts.Equal(time.Time{}):
		return time.Time{}, "is out of range: years 0001 to 9999"
	case lim.Retention > 0 && !lim.AcceptExpired && ts.Before(now.Add(-lim.Retention)):
		return time.Time{}, fmt.Sprintf("is older than the retention of %s (--retention): it would be deleted at once; "+
			"raise --retention, or set --accept-older-than-retention on the producer", lim.Retention)
	}
	return ts.Truncate(time.Microsecond), ""
}

// The numbers PostgreSQL's numeric (and so jsonb, and the SQL a user
// loads exported logs into) holds: at most this many digits before the
// decimal point and after it.
const (
	maxNumericWeight = 131072
	maxNumericScale  = 16383
)

// NumericFits reports whether the JSON number num is one PostgreSQL's
// numeric can hold.
func NumericFits(num string) bool {
	num = strings.TrimPrefix(num, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(num), "e")
	exp := 0
	if hasExp {
		expText = strings.TrimPrefix(expText, "+")
		neg := strings.HasPrefix(expText, "-")
		expText = strings.TrimLeft(strings.TrimPrefix(expText, "-"), "0")
		if len(expText) > 9 {
			return false // far beyond either limit
		}
		for _, c := range expText {
			exp = 10*exp + int(c-'0')
		}
		if neg {
			exp = -exp
		}
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	// Digits after the point as written, trailing zeros included (numeric
	// keeps them), less those the exponent moves before it.
	if len(frac)-exp > maxNumericScale {
		return false
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return true // zero
	}
	// Digits before the point of the value: where its first significant
	// digit stands.
	return len(intPart)-(len(intPart+frac)-len(digits))+exp <= maxNumericWeight
}

// unstorableNumber finds a number outside numeric's range in the checked
// JSON value raw.
func unstorableNumber(raw []byte) (string, bool) {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			for i++; raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case c == '-' || ('0' <= c && c <= '9'):
			start := i
			for i+1 < len(raw) && strings.IndexByte("0123456789+-.eE", raw[i+1]) >= 0 {
				i++
			}
			if num := string(raw[start : i+1]); !NumericFits(num) {
				return num, true
			}
		}
	}
	return "", false
}

// numberProblem says why a metadata number is refused, quoting its start.
func numberProblem(num string) string {
	if len(num) > 40 {
		num = num[:37] + "..."
	}
	return fmt.Sprintf("holds the number %s, which PostgreSQL cannot store (at most %d digits before the decimal point and %d after)",
		num, maxNumericWeight, maxNumericScale)
}
