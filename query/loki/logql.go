// Package loki serves the part of Loki's HTTP query API that Grafana's
// stock Loki data source uses, over logengine's own query service: a LogQL
// subset parsed here, answered from searches, stats and rollup histograms,
// in Loki's JSON shapes. Written from Loki's documented API; it shares no
// code with Loki.
package loki

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// UnsupportedError names a part of a query outside the supported subset
// or not valid LogQL; it answers 400.
type UnsupportedError struct{ Msg string }

func (e *UnsupportedError) Error() string { return e.Msg }

func unsupported(format string, args ...any) error {
	return &UnsupportedError{Msg: fmt.Sprintf(format, args...)}
}

// MatchOp is the operator of a label matcher or label filter.
type MatchOp string

// The operators.
const (
	OpEq    MatchOp = "="
	OpNeq   MatchOp = "!="
	OpRe    MatchOp = "=~"
	OpNre   MatchOp = "!~"
	OpGt    MatchOp = ">"
	OpGte   MatchOp = ">="
	OpLt    MatchOp = "<"
	OpLte   MatchOp = "<="
	OpEqNum MatchOp = "=="
)

// Matcher is one condition on a label.
type Matcher struct {
	Name  string
	Op    MatchOp
	Value string
	re    *regexp.Regexp // anchored, for =~ and !~
	num   float64        // for numeric comparisons
	isNum bool
}

func newMatcher(name string, op MatchOp, value string) (Matcher, error) {
	m := Matcher{Name: name, Op: op, Value: value}
	if op == OpRe || op == OpNre {
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return m, unsupported("invalid regular expression %q for label %s: %v", value, name, err)
		}
		m.re = re
	}
	return m, nil
}

// Matches applies the matcher to a label's value ("" when absent).
func (m *Matcher) Matches(v string, present bool) bool {
	switch m.Op {
	case OpEq:
		return v == m.Value
	case OpNeq:
		return v != m.Value
	case OpRe:
		return m.re.MatchString(v)
	case OpNre:
		return !m.re.MatchString(v)
	}
	// Numeric comparisons; a value that is not a number fails them.
	f, err := strconv.ParseFloat(v, 64)
	if !present || err != nil {
		return false
	}
	switch m.Op {
	case OpGt:
		return f > m.num
	case OpGte:
		return f >= m.num
	case OpLt:
		return f < m.num
	case OpLte:
		return f <= m.num
	case OpEqNum:
		return f == m.num
	}
	return false
}

// LineFilter is |=, !=, |~ or !~ with its argument.
type LineFilter struct {
	Op    string
	Value string
	re    *regexp.Regexp
}

// Matches applies the filter to a log line.
func (f *LineFilter) Matches(line string) bool {
	switch f.Op {
	case "|=":
		return strings.Contains(line, f.Value)
	case "!=":
		return !strings.Contains(line, f.Value)
	case "|~":
		return f.re.MatchString(line)
	default: // "!~"
		return !f.re.MatchString(line)
	}
}

// Stage is one step of a log pipeline: exactly one field is set.
type Stage struct {
	Line   *LineFilter
	Parser string   // "json" or "logfmt"
	Label  *Matcher // a label filter
	Drop   []string // labels to drop
}

// LogExpr is a stream selector and its pipeline.
type LogExpr struct {
	Selector []Matcher
	Pipeline []Stage
}

// Expr is a parsed query: a log query or a metric expression.
type Expr interface{ expr() }

// RangeAgg is count_over_time, rate or bytes_over_time of a log query.
type RangeAgg struct {
	Func  string
	Log   LogExpr
	Range time.Duration
}

// VectorAgg is sum or topk over a metric expression.
type VectorAgg struct {
	Op      string
	K       int // topk
	Grouped bool
	Without bool
	Labels  []string
	Inner   Expr
}

// Binary is an arithmetic operation between two metric expressions.
type Binary struct {
	Op          string
	Left, Right Expr
}

// Number is a scalar literal.
type Number struct{ Value float64 }

// VectorLit is vector(n): one series without labels.
type VectorLit struct{ Value float64 }

func (*LogExpr) expr()   {}
func (*RangeAgg) expr()  {}
func (*VectorAgg) expr() {}
func (*Binary) expr()    {}
func (*Number) expr()    {}
func (*VectorLit) expr() {}

// Parse reads a query of the supported subset, or answers an
// UnsupportedError naming what it does not take.
func Parse(s string) (Expr, error) {
	if len(s) > maxQueryBytes {
		return nil, unsupported("the query is longer than %d bytes", maxQueryBytes)
	}
	p := &parser{lex: lexer{src: s}}
	p.next()
	e, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.unexpected("the end of the query")
	}
	return e, nil
}

// ParseLog reads a log query (a stream selector and pipeline) only.
func ParseLog(s string) (*LogExpr, error) {
	e, err := Parse(s)
	if err != nil {
		return nil, err
	}
	l, ok := e.(*LogExpr)
	if !ok {
		return nil, unsupported("a log query (a stream selector such as {source=\"api\"}) is required here, not a metric query")
	}
	return l, nil
}

const maxQueryBytes = 64 << 10

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDuration
	tOp // punctuation and operators
)

type token struct {
	kind tokKind
	text string // the operator, identifier, number or duration as written; a string unquoted
	pos  int
}

type lexer struct {
	src string
	pos int
}

// unsupportedWords are LogQL words outside the subset, named in the 400.
var unsupportedWords = map[string]string{
	"line_format": "the line_format stage", "label_format": "the label_format stage", "unwrap": "unwrap",
	"regexp": "the regexp parser", "pattern": "the pattern parser", "unpack": "the unpack parser",
	"decolorize": "the decolorize stage", "keep": "the keep stage", "distinct": "the distinct stage",
	"offset": "offset", "ip": "ip() filters", "or": "or in filters", "and": "and in filters",
	"avg": "avg", "min": "min", "max": "max", "count": "count", "stddev": "stddev", "stdvar": "stdvar",
	"bottomk": "bottomk", "sort": "sort", "sort_desc": "sort_desc", "absent_over_time": "absent_over_time",
	"avg_over_time": "avg_over_time", "sum_over_time": "sum_over_time", "min_over_time": "min_over_time",
	"max_over_time": "max_over_time", "quantile_over_time": "quantile_over_time", "first_over_time": "first_over_time",
	"last_over_time": "last_over_time", "stddev_over_time": "stddev_over_time", "stdvar_over_time": "stdvar_over_time",
	"bytes_rate": "bytes_rate", "rate_counter": "rate_counter", "label_replace": "label_replace",
	"approx_topk": "approx_topk", "on": "on()", "ignoring": "ignoring()", "group_left": "group_left",
	"group_right": "group_right", "bool": "bool comparisons", "label_values": "label_values",
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[l.pos:])
		if r == '#' { // a comment runs to the end of the line
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
			continue
		}
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += n
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case c == '"' || c == '`':
		return l.str(c)
	case c == '_' || isLetter(c):
		for l.pos < len(l.src) && (l.src[l.pos] == '_' || isLetter(l.src[l.pos]) || isDigit(l.src[l.pos]) || l.src[l.pos] == '.' || l.src[l.pos] == ':') {
			l.pos++
		}
		return token{kind: tIdent, text: l.src[start:l.pos], pos: start}, nil
	case isDigit(c) || (c == '.' && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1])):
		for l.pos < len(l.src) && (isDigit(l.src[l.pos]) || isLetter(l.src[l.pos]) || l.src[l.pos] == '.') {
			l.pos++
		}
		text := l.src[start:l.pos]
		if _, err := strconv.ParseFloat(text, 64); err == nil {
			return token{kind: tNumber, text: text, pos: start}, nil
		}
		if _, err := parseDuration(text); err == nil {
			return token{kind: tDuration, text: text, pos: start}, nil
		}
		return token{}, unsupported("cannot read %q at position %d: not a number or a duration", text, start)
	}
	for _, op := range []string{"!=", "=~", "!~", "|=", "|~", ">=", "<=", "==", "{", "}", "(", ")", "[", "]", ",", "=", "|", ">", "<", "+", "-", "*", "/"} {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += len(op)
			return token{kind: tOp, text: op, pos: start}, nil
		}
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	if strings.ContainsRune("%^@", r) {
		return token{}, unsupported("the operator %q at position %d is not supported", r, start)
	}
	return token{}, unsupported("unexpected character %q at position %d", r, start)
}

func (l *lexer) str(q byte) (token, error) {
	start := l.pos
	l.pos++
	if q == '`' {
		end := strings.IndexByte(l.src[l.pos:], '`')
		if end < 0 {
			return token{}, unsupported("unterminated string at position %d", start)
		}
		text := l.src[l.pos : l.pos+end]
		l.pos += end + 1
		return token{kind: tString, text: text, pos: start}, nil
	}
	for i := l.pos; i < len(l.src); i++ {
		switch l.src[i] {
		case '\\':
			i++
		case '"':
			text, err := strconv.Unquote(l.src[start : i+1])
			if err != nil {
				return token{}, unsupported("invalid string %s at position %d: %v", l.src[start:i+1], start, err)
			}
			l.pos = i + 1
			return token{kind: tString, text: text, pos: start}, nil
		}
	}
	return token{}, unsupported("unterminated string at position %d", start)
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// parseDuration reads a LogQL duration: Go's units plus d, w and y.
func parseDuration(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	if rest == "" {
		return 0, fmt.Errorf("empty duration")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && isLetter(rest[j]) {
			j++
		}
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
			"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}[rest[:j]]
		if unit == 0 {
			return 0, fmt.Errorf("bad unit in duration %q", s)
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return total, nil
}

type parser struct {
	lex lexer
	tok token
	err error
}

func (p *parser) next() {
	if p.err != nil {
		return
	}
	t, err := p.lex.next()
	if err != nil {
		p.err = err
		p.tok = token{kind: tEOF, pos: p.lex.pos}
		return
	}
	p.tok = t
}

func (p *parser) describe() string {
	switch p.tok.kind {
	case tEOF:
		return "the end of the query"
	case tString:
		return strconv.Quote(p.tok.text)
	}
	return fmt.Sprintf("%q", p.tok.text)
}

func (p *parser) unexpected(want string) error {
	if p.err != nil {
		return p.err
	}
	if p.tok.kind == tIdent {
		if what, ok := unsupportedWords[p.tok.text]; ok {
			return unsupported("%s (at position %d) is not supported by this server's LogQL subset", what, p.tok.pos)
		}
	}
	return unsupported("parse error at position %d: expected %s, found %s", p.tok.pos, want, p.describe())
}

func (p *parser) isOp(op string) bool { return p.tok.kind == tOp && p.tok.text == op }

func (p *parser) expectOp(op string) error {
	if !p.isOp(op) {
		return p.unexpected(strconv.Quote(op))
	}
	p.next()
	return p.err
}

func precedence(op string) int {
	switch op {
	case "+", "-":
		return 1
	case "*", "/":
		return 2
	}
	return 0
}

// parseExpr reads operands joined by arithmetic, by precedence climbing.
func (p *parser) parseExpr(minPrec int) (Expr, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.tok.kind == tOp && precedence(p.tok.text) > minPrec {
		op := p.tok.text
		p.next()
		if p.tok.kind == tIdent && (p.tok.text == "bool" || p.tok.text == "on" || p.tok.text == "ignoring") {
			return nil, p.unexpected("an operand")
		}
		right, err := p.parseExpr(precedence(op))
		if err != nil {
			return nil, err
		}
		if _, ok := left.(*LogExpr); ok {
			return nil, unsupported("a log query cannot be an operand of %q", op)
		}
		if _, ok := right.(*LogExpr); ok {
			return nil, unsupported("a log query cannot be an operand of %q", op)
		}
		left = &Binary{Op: op, Left: left, Right: right}
	}
	if p.tok.kind == tOp && (p.tok.text == "==" || p.tok.text == "!=" || p.tok.text == ">" || p.tok.text == "<" || p.tok.text == ">=" || p.tok.text == "<=") {
		if _, ok := left.(*LogExpr); !ok {
			return nil, unsupported("comparison operators between metric expressions (%q at position %d) are not supported", p.tok.text, p.tok.pos)
		}
	}
	return left, p.err
}

func (p *parser) parseUnary() (Expr, error) {
	if p.err != nil {
		return nil, p.err
	}
	switch {
	case p.tok.kind == tNumber:
		v, _ := strconv.ParseFloat(p.tok.text, 64)
		p.next()
		return &Number{Value: v}, p.err
	case p.isOp("-"):
		p.next()
		if p.tok.kind != tNumber {
			return nil, unsupported("unary minus is supported before a number only (position %d)", p.tok.pos)
		}
		v, _ := strconv.ParseFloat(p.tok.text, 64)
		p.next()
		return &Number{Value: -v}, p.err
	case p.isOp("("):
		p.next()
		e, err := p.parseExpr(0)
		if err != nil {
			return nil, err
		}
		return e, p.expectOp(")")
	case p.isOp("{"):
		return p.parseLog()
	case p.tok.kind == tIdent:
		switch name := p.tok.text; name {
		case "vector":
			p.next()
			if err := p.expectOp("("); err != nil {
				return nil, err
			}
			neg := 1.0
			if p.isOp("-") {
				neg = -1
				p.next()
			}
			if p.tok.kind != tNumber {
				return nil, p.unexpected("a number")
			}
			v, _ := strconv.ParseFloat(p.tok.text, 64)
			p.next()
			return &VectorLit{Value: neg * v}, p.expectOp(")")
		case "count_over_time", "rate", "bytes_over_time":
			return p.parseRangeAgg(name)
		case "sum", "topk":
			return p.parseVectorAgg(name)
		}
	}
	return nil, p.unexpected("a stream selector, a number or one of count_over_time, rate, bytes_over_time, sum, topk, vector")
}

func (p *parser) parseRangeAgg(fn string) (Expr, error) {
	p.next()
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	if !p.isOp("{") {
		return nil, p.unexpected("a stream selector")
	}
	l, err := p.parseLog()
	if err != nil {
		return nil, err
	}
	if !p.isOp("[") {
		return nil, p.unexpected("a range such as [5m]")
	}
	p.next()
	if p.tok.kind != tDuration {
		return nil, p.unexpected("a duration such as 5m")
	}
	d, _ := parseDuration(p.tok.text)
	if d <= 0 {
		return nil, unsupported("the range of %s must be positive", fn)
	}
	p.next()
	if err := p.expectOp("]"); err != nil {
		return nil, err
	}
	if p.tok.kind == tIdent && p.tok.text == "offset" {
		return nil, p.unexpected("")
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	if p.tok.kind == tIdent && (p.tok.text == "by" || p.tok.text == "without") {
		return nil, unsupported("grouping %s by labels is not supported; wrap it in sum by (...)", fn)
	}
	return &RangeAgg{Func: fn, Log: *l, Range: d}, nil
}

func (p *parser) parseGrouping(a *VectorAgg) error {
	if a.Grouped {
		return unsupported("%s has two grouping clauses", a.Op)
	}
	a.Grouped, a.Without = true, p.tok.text == "without"
	p.next()
	if err := p.expectOp("("); err != nil {
		return err
	}
	for !p.isOp(")") {
		if p.tok.kind != tIdent {
			return p.unexpected("a label name")
		}
		a.Labels = append(a.Labels, p.tok.text)
		p.next()
		if p.isOp(",") {
			p.next()
		} else if !p.isOp(")") {
			return p.unexpected(`"," or ")"`)
		}
	}
	p.next()
	return p.err
}

func (p *parser) parseVectorAgg(op string) (Expr, error) {
	a := &VectorAgg{Op: op}
	p.next()
	if p.tok.kind == tIdent && (p.tok.text == "by" || p.tok.text == "without") {
		if err := p.parseGrouping(a); err != nil {
			return nil, err
		}
	}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	if op == "topk" {
		if p.tok.kind != tNumber {
			return nil, p.unexpected("the k of topk, a whole number")
		}
		k, err := strconv.Atoi(p.tok.text)
		if err != nil || k < 1 {
			return nil, unsupported("the k of topk must be a whole number at least 1, not %s", p.tok.text)
		}
		a.K = k
		p.next()
		if err := p.expectOp(","); err != nil {
			return nil, err
		}
	}
	inner, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if _, ok := inner.(*LogExpr); ok {
		return nil, unsupported("%s takes a metric expression such as count_over_time({...}[5m]), not a log query", op)
	}
	if _, ok := inner.(*Number); ok {
		return nil, unsupported("%s of a number is not supported", op)
	}
	a.Inner = inner
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	if p.tok.kind == tIdent && (p.tok.text == "by" || p.tok.text == "without") {
		if err := p.parseGrouping(a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (p *parser) parseLog() (*LogExpr, error) {
	l := &LogExpr{}
	p.next() // {
	for !p.isOp("}") {
		if p.tok.kind != tIdent {
			return nil, p.unexpected("a label name")
		}
		name := p.tok.text
		if !validLabelName(name) {
			return nil, unsupported("invalid label name %q", name)
		}
		p.next()
		if p.tok.kind != tOp || (p.tok.text != "=" && p.tok.text != "!=" && p.tok.text != "=~" && p.tok.text != "!~") {
			return nil, p.unexpected("one of = != =~ !~")
		}
		op := MatchOp(p.tok.text)
		p.next()
		if p.tok.kind != tString {
			return nil, p.unexpected("a quoted string")
		}
		m, err := newMatcher(name, op, p.tok.text)
		if err != nil {
			return nil, err
		}
		l.Selector = append(l.Selector, m)
		p.next()
		if p.isOp(",") {
			p.next()
		} else if !p.isOp("}") {
			return nil, p.unexpected(`"," or "}"`)
		}
	}
	p.next()
	for p.err == nil {
		switch {
		case p.isOp("|=") || p.isOp("!=") || p.isOp("|~") || p.isOp("!~"):
			op := p.tok.text
			p.next()
			if p.tok.kind != tString {
				return nil, p.unexpected("a quoted string after " + op)
			}
			f := &LineFilter{Op: op, Value: p.tok.text}
			if op == "|~" || op == "!~" {
				re, err := regexp.Compile(p.tok.text)
				if err != nil {
					return nil, unsupported("invalid regular expression %q: %v", p.tok.text, err)
				}
				f.re = re
			}
			p.next()
			if p.tok.kind == tIdent && p.tok.text == "or" {
				return nil, p.unexpected("")
			}
			l.Pipeline = append(l.Pipeline, Stage{Line: f})
		case p.isOp("|"):
			p.next()
			st, err := p.parseStage()
			if err != nil {
				return nil, err
			}
			l.Pipeline = append(l.Pipeline, st)
		default:
			return l, p.err
		}
	}
	return nil, p.err
}

func (p *parser) parseStage() (Stage, error) {
	if p.tok.kind != tIdent {
		return Stage{}, p.unexpected("json, logfmt, drop or a label filter after |")
	}
	word := p.tok.text
	switch word {
	case "json", "logfmt":
		p.next()
		if p.tok.kind == tIdent || p.tok.kind == tOp && p.tok.text == "-" {
			return Stage{}, unsupported("parameters of the %s parser (position %d) are not supported", word, p.tok.pos)
		}
		return Stage{Parser: word}, p.err
	case "drop":
		p.next()
		var names []string
		for {
			if p.tok.kind != tIdent {
				return Stage{}, p.unexpected("a label name after drop")
			}
			names = append(names, p.tok.text)
			p.next()
			if p.isOp("=") || p.isOp("=~") || p.isOp("!=") || p.isOp("!~") {
				return Stage{}, unsupported("drop with a matcher (position %d) is not supported; drop plain label names", p.tok.pos)
			}
			if !p.isOp(",") {
				break
			}
			p.next()
		}
		return Stage{Drop: names}, p.err
	}
	switch word {
	case "line_format", "label_format", "regexp", "pattern", "unpack", "decolorize", "keep", "distinct", "unwrap":
		return Stage{}, p.unexpected("")
	}
	// A label filter: name op value. (Any other word is a label name,
	// even one LogQL uses elsewhere, such as count or offset.)
	p.next()
	if p.tok.kind != tOp {
		return Stage{}, p.unexpected("a comparison operator")
	}
	op := MatchOp(p.tok.text)
	p.next()
	switch op {
	case OpEq, OpNeq, OpRe, OpNre:
		if p.tok.kind == tNumber && (op == OpEq || op == OpNeq) {
			// {x} | n = 3 compares numbers in LogQL.
			v, _ := strconv.ParseFloat(p.tok.text, 64)
			m := Matcher{Name: word, Op: OpEqNum, num: v, isNum: true, Value: p.tok.text}
			p.next()
			if op == OpNeq {
				return Stage{}, unsupported("the numeric filter %s != %s is not supported; use a string, as %s != \"%s\"", word, m.Value, word, m.Value)
			}
			return Stage{Label: &m}, p.err
		}
		if p.tok.kind != tString {
			return Stage{}, p.unexpected("a quoted string")
		}
		m, err := newMatcher(word, op, p.tok.text)
		if err != nil {
			return Stage{}, err
		}
		p.next()
		return p.afterFilter(Stage{Label: &m})
	case OpGt, OpGte, OpLt, OpLte, OpEqNum:
		if p.tok.kind == tDuration {
			return Stage{}, unsupported("duration comparisons (%s %s %s) are not supported", word, op, p.tok.text)
		}
		if p.tok.kind != tNumber {
			return Stage{}, p.unexpected("a number")
		}
		v, _ := strconv.ParseFloat(p.tok.text, 64)
		m := Matcher{Name: word, Op: op, num: v, isNum: true, Value: p.tok.text}
		p.next()
		return p.afterFilter(Stage{Label: &m})
	}
	return Stage{}, p.unexpected("a comparison operator")
}

func (p *parser) afterFilter(s Stage) (Stage, error) {
	if p.isOp(",") || (p.tok.kind == tIdent && (p.tok.text == "and" || p.tok.text == "or")) {
		return Stage{}, unsupported("combined label filters (position %d) are not supported; chain them as | a=\"x\" | b=\"y\"", p.tok.pos)
	}
	return s, p.err
}

// validLabelName is Prometheus's label name syntax.
func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || isLetter(c) || (i > 0 && isDigit(c))) {
			return false
		}
	}
	return true
}
