package event

import (
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is a small JSON reader for the hot path, in place of
// encoding/json. It accepts exactly the JSON that encoding/json accepts
// (RFC 8259, at most maxDepth nested arrays and objects, any bytes ≥ 0x20
// in strings, invalid UTF-8 included) and decodes strings as it does, so
// no client sees a different answer. It builds no tree: values stay slices
// of the input. When it finds the input malformed it says only that; the
// callers ask encoding/json for the error text, so the messages are the
// same too.

// maxDepth is encoding/json's limit on nested arrays and objects.
const maxDepth = 10000

// byte classes inside a JSON string.
const (
	chPlain   = iota // copied as is
	chQuote          // ends the string
	chEscape         // starts an escape
	chControl        // not allowed unescaped
	chHigh           // starts a multi-byte UTF-8 sequence (or is invalid)
)

var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = chControl
	}
	t['"'] = chQuote
	t['\\'] = chEscape
	for c := 0x80; c < 0x100; c++ {
		t[c] = chHigh
	}
	return t
}()

// string flags, as str reports them.
const (
	strEscaped  = 1 << iota // holds a backslash escape
	strNonASCII             // holds bytes ≥ 0x80
)

// reader walks one JSON text. depth counts the arrays and objects open
// around pos, as encoding/json's scanner does; spaced is set whenever white
// space is skipped.
type reader struct {
	data   []byte
	pos    int
	depth  int
	spaced bool
}

func (r *reader) ws() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
			r.spaced = true
		default:
			return
		}
	}
}

// atEnd skips white space and reports whether nothing follows.
func (r *reader) atEnd() bool {
	r.ws()
	return r.pos == len(r.data)
}

// next skips white space and returns the byte there, or 0 at the end.
func (r *reader) next() byte {
	r.ws()
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

// str reads the string that starts at pos (a quote) and reports what
// decoding it will have to do.
func (r *reader) str() (flags uint8, ok bool) {
	d := r.data
	i := r.pos + 1
	for {
		// Eight bytes at a time while none is special; ASCII text is the
		// bulk of an event.
		for i+8 <= len(d) {
			x := binary.LittleEndian.Uint64(d[i:])
			if hasSpecial(x) {
				break
			}
			i += 8
		}
		for i < len(d) && strClass[d[i]] == chPlain {
			i++
		}
		if i >= len(d) {
			return 0, false
		}
		switch strClass[d[i]] {
		case chQuote:
			r.pos = i + 1
			return flags, true
		case chHigh:
			flags |= strNonASCII
			i++
		case chControl:
			return 0, false
		case chEscape:
			flags |= strEscaped
			if i+1 >= len(d) {
				return 0, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if hex4(d[i+2:]) < 0 {
					return 0, false
				}
				i += 6
			default:
				return 0, false
			}
		}
	}
}

// hasSpecial reports whether any of the eight bytes in x is a quote, a
// backslash, a control character or not ASCII (the SWAR tests of "Bit
// Twiddling Hacks": a byte below n, a zero byte after an XOR).
func hasSpecial(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - ones*0x20) &^ x
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (below|(q-ones)&^q|(bs-ones)&^bs|x)&highs != 0
}

// hex4 is the value of four hex digits at the start of s, or -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// value checks the value at pos and moves past it.
func (r *reader) value() bool {
	if r.pos >= len(r.data) {
		return false
	}
	switch c := r.data[r.pos]; c {
	case '{':
		return r.object()
	case '[':
		return r.array()
	case '"':
		_, ok := r.str()
		return ok
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	default:
		return r.number()
	}
}

func (r *reader) literal(lit string) bool {
	if len(r.data)-r.pos < len(lit) || string(r.data[r.pos:r.pos+len(lit)]) != lit {
		return false
	}
	r.pos += len(lit)
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *reader) number() bool {
	d, i := r.data, r.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && isDigit(d[i]):
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	r.pos = i
	return true
}

// open enters the array or object at pos.
func (r *reader) open() bool {
	r.depth++
	r.pos++
	return r.depth <= maxDepth
}

func (r *reader) array() bool {
	if !r.open() {
		return false
	}
	if r.next() == ']' {
		r.pos++
		r.depth--
		return true
	}
	for {
		r.ws()
		if !r.value() {
			return false
		}
		switch r.next() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			r.depth--
			return true
		default:
			return false
		}
	}
}

func (r *reader) object() bool {
	return r.members(func(_ []byte, _ uint8) bool {
		r.ws()
		return r.value()
	})
}

// members reads the object at pos, calling member for each key (the raw
// string, quotes included) with pos after its colon; member reads the value.
func (r *reader) members(member func(key []byte, flags uint8) bool) bool {
	if !r.open() {
		return false
	}
	if r.next() == '}' {
		r.pos++
		r.depth--
		return true
	}
	for {
		if r.next() != '"' {
			return false
		}
		start := r.pos
		flags, ok := r.str()
		if !ok {
			return false
		}
		key := r.data[start:r.pos]
		if r.next() != ':' {
			return false
		}
		r.pos++
		if !member(key, flags) {
			return false
		}
		switch r.next() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			r.depth--
			return true
		default:
			return false
		}
	}
}

// appendUnquoted appends the text of a checked JSON string literal (quotes
// included) as encoding/json decodes it: escapes resolved, and each invalid
// UTF-8 byte or unpaired surrogate escape replaced by U+FFFD.
func appendUnquoted(dst, lit []byte, flags uint8) []byte {
	s := lit[1 : len(lit)-1]
	if flags&strEscaped == 0 && (flags&strNonASCII == 0 || utf8.Valid(s)) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(s[i+2:])
				i += 6
				if utf16.IsSurrogate(rr) {
					rr1 := rune(-1)
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						rr1 = hex4(s[i+2:])
					}
					if dec := utf16.DecodeRune(rr, rr1); dec != utf8.RuneError {
						dst = utf8.AppendRune(dst, dec)
						i += 6
						continue
					}
					rr = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			rr, size := utf8.DecodeRune(s[i:])
			if rr == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// keyIs reports whether a decoded object key selects the field name as
// encoding/json matches keys to struct fields: exactly, or else equal
// under Unicode simple case folding. name is lower-case ASCII letters
// with at most one capital; of all non-ASCII runes only ſ (U+017F) and
// the Kelvin sign (U+212A) fold to ASCII letters, to S and K.
func keyIs(key []byte, name string) bool {
	if string(key) == name {
		return true
	}
	j := 0
	for i := 0; i < len(key); {
		c := key[i]
		i++
		if c >= utf8.RuneSelf {
			rr, size := utf8.DecodeRune(key[i-1:])
			i += size - 1
			switch rr {
			case '\u017F': // ſ
				c = 'S'
			case '\u212A': // Kelvin sign
				c = 'K'
			default:
				return false
			}
		}
		if j >= len(name) || upper(c) != upper(name[j]) {
			return false
		}
		j++
	}
	return j == len(name)
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// jsonKind names the kind of a JSON value for an error message.
func jsonKind(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// appendString appends s as a JSON string exactly as encoding/json writes
// it with HTML escaping off: control characters, quote and backslash
// escaped, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && !hasSpecial(load64(s, i)) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		rr, size := decodeRune(s[i:])
		switch {
		case rr == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case rr == '\u2028' || rr == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[rr&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// load64 reads eight bytes of s at i, little-endian.
func load64[S ~string | ~[]byte](s S, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	n := min(len(s), utf8.UTFMax)
	var b [utf8.UTFMax]byte
	copy(b[:], s[:n])
	return utf8.DecodeRune(b[:n])
}

const hexDigits = "0123456789abcdef"
