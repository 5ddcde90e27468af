package block

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/logengine/logengine/store/logs"
)

// Metadata semantics. A logs.MetaMatch{Key, Value} keeps a row exactly
// when the SQL of store.addMeta would: the jsonb containment
// metadata @> {Key: Value} (a JSON string), or, when Value reads as a
// JSON number or boolean (encoding/json decodes it as float64 or bool),
// also metadata @> {Key: <Value as that JSON literal>}. In jsonb terms:
//
//   - only top-level members count; a duplicated key keeps its last value
//     (jsonb drops the earlier ones);
//   - strings compare after unescaping, byte for byte;
//   - numbers compare as exact decimals (500 = 500.0 = 5e2, -0 = 0);
//   - a scalar never matches inside an array ({"k":["v"]} does not
//     contain {"k":"v"});
//   - metadata that is not a JSON object matches nothing.
//
// Both sides of a comparison pass through encoding/json's handling of
// invalid UTF-8 (each bad byte becomes U+FFFD), as the SQL query text
// does; PostgreSQL would refuse such metadata outright.

// member is one top-level member of a JSON object: the key as written
// between its quotes (escapes kept) and the value's JSON text.
type member struct{ key, val []byte }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanObject appends the top-level members of b to dst. ok is false when b
// is not an object. compact reports whether b is exactly
// "{" + `"key":value` joined by "," + "}", so that its members rebuild it
// byte for byte. b should be valid JSON (json.Valid); on anything else the
// result is meaningless but scanObject does not panic.
func scanObject(dst []member, b []byte) (out []member, compact, ok bool) {
	i := 0
	compact = true
	skip := func() {
		for i < len(b) && isSpace(b[i]) {
			i++
			compact = false
		}
	}
	skip()
	if i >= len(b) || b[i] != '{' {
		return dst, false, false
	}
	i++
	skip()
	if i < len(b) && b[i] == '}' {
		i++
		skip()
		return dst, compact, i == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, false, false
		}
		end := skipString(b, i)
		if end < 0 {
			return dst, false, false
		}
		key := b[i+1 : end-1]
		i = end
		skip()
		if i >= len(b) || b[i] != ':' {
			return dst, false, false
		}
		i++
		skip()
		vend := skipValue(b, i)
		if vend <= i {
			return dst, false, false
		}
		dst = append(dst, member{key: key, val: b[i:vend]})
		i = vend
		skip()
		if i >= len(b) {
			return dst, false, false
		}
		switch b[i] {
		case ',':
			i++
			skip()
		case '}':
			i++
			skip()
			return dst, compact, i == len(b)
		default:
			return dst, false, false
		}
	}
}

// skipString returns the index just past the string starting at b[i]
// (a quote), or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i],
// or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := skipString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSpace(b[j]) {
		j++
	}
	return j
}

// plain reports whether a string's raw text (between its quotes) is its
// value: no escape and valid UTF-8.
func plain(raw []byte) bool {
	return bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw)
}

// unquote is the value of a JSON string literal q (with its quotes).
func unquote(q []byte) (string, bool) {
	if len(q) >= 2 && q[0] == '"' && q[len(q)-1] == '"' && plain(q[1:len(q)-1]) {
		return string(q[1 : len(q)-1]), true
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", false
	}
	return s, true
}

// keyText is the value of a member's raw key.
func keyText(raw []byte) (string, bool) {
	if plain(raw) {
		return string(raw), true
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	return unquote(q)
}

// coerceUTF8 replaces each invalid byte with U+FFFD, as encoding/json does
// when store.addMeta marshals a MetaMatch.
func coerceUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// typedText reports whether s reads as a JSON number or boolean the way
// store.addMeta decides it (json.Unmarshal into any gives a float64 or a
// bool: surrounding JSON whitespace is allowed, a number past float64's
// range is not), and returns the canonical text the metadata filter
// hashes it under.
func typedText(s string) (string, bool) {
	t := strings.Trim(s, " \t\n\r")
	if t == "true" || t == "false" {
		return t, true
	}
	if !validNumber(t) {
		return "", false
	}
	if _, err := strconv.ParseFloat(t, 64); err != nil {
		return "", false
	}
	return string(appendCanonNumber(nil, []byte(t))), true
}

// mayBeTyped is a cheap test that lets most strings skip typedText.
func mayBeTyped(s []byte) bool {
	for _, c := range s {
		if !isSpace(c) {
			return c == '-' || isDigit(c) || c == 't' || c == 'f'
		}
	}
	return false
}

// appendCanonNumber appends the canonical text of the JSON number n: two
// numbers are equal as exact decimals (as PostgreSQL's numeric compares
// them) iff their canonical texts are. The form is an optional "-", the
// significant digits without leading or trailing zeros, and "e" and the
// exponent when it is not 0; zero is "0". An exponent of more than 15
// digits is kept as written behind a "~", so such numbers equal only the
// same text (PostgreSQL refuses them anyway).
func appendCanonNumber(dst, n []byte) []byte {
	orig := n
	neg := len(n) > 0 && n[0] == '-'
	if neg {
		n = n[1:]
	}
	i := 0
	for i < len(n) && isDigit(n[i]) {
		i++
	}
	intPart := n[:i]
	var frac []byte
	if i < len(n) && n[i] == '.' {
		j := i + 1
		for j < len(n) && isDigit(n[j]) {
			j++
		}
		frac = n[i+1 : j]
		i = j
	}
	var exp int64
	if i < len(n) && (n[i] == 'e' || n[i] == 'E') {
		i++
		eneg := false
		if i < len(n) && (n[i] == '+' || n[i] == '-') {
			eneg = n[i] == '-'
			i++
		}
		digits := n[i:]
		for len(digits) > 1 && digits[0] == '0' {
			digits = digits[1:]
		}
		if len(digits) > 15 {
			if isZero(intPart, frac) {
				return append(dst, '0')
			}
			return append(append(dst, '~'), orig...)
		}
		for _, c := range digits {
			if isDigit(c) {
				exp = exp*10 + int64(c-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	// Significant digits: intPart then frac, without leading zeros.
	start := len(dst)
	if neg {
		dst = append(dst, '-')
	}
	digStart := len(dst)
	for _, part := range [2][]byte{intPart, frac} {
		for _, c := range part {
			if c == '0' && len(dst) == digStart {
				continue
			}
			dst = append(dst, c)
		}
	}
	if len(dst) == digStart {
		return append(dst[:start], '0')
	}
	exp -= int64(len(frac))
	for dst[len(dst)-1] == '0' {
		dst = dst[:len(dst)-1]
		exp++
	}
	if exp != 0 {
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, exp, 10)
	}
	return dst
}

func isZero(parts ...[]byte) bool {
	for _, p := range parts {
		for _, c := range p {
			if c != '0' {
				return false
			}
		}
	}
	return true
}

// metaQuery is a logs.MetaMatch prepared for matching and hashing.
type metaQuery struct {
	key string // coerced as the SQL query text is
	str string // the value compared with JSON strings
	// typed is the canonical text of Value read as a JSON number or
	// boolean, "" when it reads as neither.
	typed string
	isNum bool
	buf   []byte // scratch for canonical numbers
}

func newMetaQuery(m logs.MetaMatch) metaQuery {
	q := metaQuery{key: coerceUTF8(m.Key), str: coerceUTF8(m.Value)}
	if t, ok := typedText(m.Value); ok {
		q.typed = t
		q.isNum = t != "true" && t != "false"
	}
	return q
}

// item is the text the metadata filter holds for any row this query
// matches.
func (q metaQuery) item() string {
	if q.typed != "" {
		return q.typed
	}
	return q.str
}

// keyIs reports whether a member's raw key is the query's key.
func (q *metaQuery) keyIs(raw []byte) bool {
	if plain(raw) {
		return string(raw) == q.key
	}
	k, ok := keyText(raw)
	return ok && k == q.key
}

// valueMatches reports whether a member's JSON value text matches.
func (q *metaQuery) valueMatches(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch c := v[0]; {
	case c == '"':
		if len(v) >= 2 && v[len(v)-1] == '"' && plain(v[1:len(v)-1]) {
			return string(v[1:len(v)-1]) == q.str
		}
		s, ok := unquote(v)
		return ok && s == q.str
	case c == 't' || c == 'f':
		return q.typed != "" && !q.isNum && string(v) == q.typed
	case c == '-' || isDigit(c):
		if !q.isNum {
			return false
		}
		q.buf = appendCanonNumber(q.buf[:0], v)
		return string(q.buf) == q.typed
	}
	return false
}

// matchMembers applies the query to an object's members: the last member
// with the key decides, as in jsonb.
func (q *metaQuery) matchMembers(ms []member) bool {
	for i := len(ms) - 1; i >= 0; i-- {
		if q.keyIs(ms[i].key) {
			return q.valueMatches(ms[i].val)
		}
	}
	return false
}

// valueTexts calls fn with each text under which a member's value goes
// into the metadata filter: a string as itself and, when it reads as a
// number or boolean, as that one's canonical text too (a typed query
// hashes only the canonical text); a number as its canonical text; a
// boolean as itself. Null, objects and arrays match no MetaMatch and give
// nothing. buf is scratch; the text passed to fn is valid only during
// the call.
func valueTexts(v, buf []byte, fn func(text []byte)) []byte {
	if len(v) == 0 {
		return buf
	}
	switch c := v[0]; {
	case c == '"':
		var s []byte
		if len(v) >= 2 && v[len(v)-1] == '"' && plain(v[1:len(v)-1]) {
			s = v[1 : len(v)-1]
		} else if u, ok := unquote(v); ok {
			s = []byte(u)
		} else {
			return buf
		}
		fn(s)
		if mayBeTyped(s) {
			if t, ok := typedText(string(s)); ok && t != string(s) {
				fn([]byte(t))
			}
		}
	case c == 't' || c == 'f':
		fn(v)
	case c == '-' || isDigit(c):
		buf = appendCanonNumber(buf[:0], v)
		fn(buf)
	}
	return buf
}
