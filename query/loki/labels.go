package loki

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/logengine/logengine/store/logs"
)

// Labels are a log's labels, sorted by name.
type Labels []Label

// Label is one name and value.
type Label struct{ Name, Value string }

// Get returns a label's value and whether it is present.
func (ls Labels) Get(name string) (string, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// Key is the labels as one comparable string.
func (ls Labels) Key() string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name)
		b.WriteByte(0)
		b.WriteString(l.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// Map is the labels as a JSON object.
func (ls Labels) Map() map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return m
}

func (ls Labels) set(name, value string) Labels {
	for i := range ls {
		if ls[i].Name == name {
			ls[i].Value = value
			return ls
		}
	}
	ls = append(ls, Label{name, value})
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

func (ls Labels) without(names ...string) Labels {
	return slices.DeleteFunc(ls, func(l Label) bool { return slices.Contains(names, l.Name) })
}

// LevelLabel is a level as the level label shows it: lower case, as
// Grafana's log level colours expect.
func LevelLabel(l logs.Level) string { return strings.ToLower(l.String()) }

// StreamLabels are the labels a stored log carries: source, level, and
// each top-level metadata member whose key is a valid label name and
// whose value is a string, number or boolean (its text).
func StreamLabels(e *logs.Event) Labels {
	ls := Labels{{"level", LevelLabel(e.Level)}, {"source", e.Source}}
	if len(e.Metadata) == 0 {
		return ls
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(e.Metadata, &meta) != nil {
		return ls
	}
	for k, raw := range meta {
		if k == "level" || k == "source" || !validLabelName(k) || strings.HasPrefix(k, "__") {
			continue
		}
		if v, ok := scalarText(raw); ok {
			ls = append(ls, Label{k, v})
		}
	}
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

// scalarText is a JSON string's value, or a number's or boolean's text.
func scalarText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case c == 't' || c == 'f' || c == '-' || isDigit(c):
		return string(raw), true
	}
	return "", false
}

// Errors the parsers set in the __error__ label, as Loki names them.
const (
	errJSON   = "JSONParserErr"
	errLogfmt = "LogfmtParserErr"
)

// addExtracted adds a parsed label; one that clashes with a label of the
// stream gets the suffix _extracted, as in Loki.
func addExtracted(ls Labels, stream Labels, name, value string) Labels {
	name = sanitizeLabelName(name)
	if name == "" {
		return ls
	}
	if _, ok := stream.Get(name); ok {
		name += "_extracted"
	}
	return ls.set(name, value)
}

func sanitizeLabelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || isLetter(c) || (i > 0 && isDigit(c))) {
			b[i] = '_'
		}
	}
	return string(b)
}

// parseJSON extracts the members of a JSON object line, nested objects
// flattened with "_" (arrays are skipped, as Loki's json parser does).
func parseJSON(ls, stream Labels, line string) Labels {
	var obj map[string]any
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil || dec.More() {
		return ls.set("__error__", errJSON)
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			name := prefix + k
			switch v := v.(type) {
			case map[string]any:
				walk(name+"_", v)
			case string:
				ls = addExtracted(ls, stream, name, v)
			case json.Number:
				ls = addExtracted(ls, stream, name, v.String())
			case bool:
				ls = addExtracted(ls, stream, name, strconv.FormatBool(v))
			case nil:
				ls = addExtracted(ls, stream, name, "")
			}
		}
	}
	walk("", obj)
	return ls
}

// parseLogfmt extracts key=value pairs; a value may be double-quoted.
func parseLogfmt(ls, stream Labels, line string) Labels {
	i := 0
	for i < len(line) {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		start := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' {
			i++
		}
		key := line[start:i]
		if key == "" {
			if i < len(line) && line[i] == '=' {
				return ls.set("__error__", errLogfmt)
			}
			continue
		}
		if i >= len(line) || line[i] != '=' {
			ls = addExtracted(ls, stream, key, "")
			continue
		}
		i++ // =
		var value string
		if i < len(line) && line[i] == '"' {
			end := i + 1
			for end < len(line) && line[end] != '"' {
				if line[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(line) {
				return ls.set("__error__", errLogfmt)
			}
			v, err := strconv.Unquote(line[i : end+1])
			if err != nil {
				return ls.set("__error__", errLogfmt)
			}
			value, i = v, end+1
		} else {
			vs := i
			for i < len(line) && line[i] != ' ' {
				i++
			}
			value = line[vs:i]
		}
		ls = addExtracted(ls, stream, key, value)
	}
	return ls
}

// process runs a log's line and labels through a pipeline; ok is false
// when a stage filters it out.
func process(pipeline []Stage, line string, stream Labels) (Labels, bool) {
	ls := stream
	copied := false
	own := func() {
		if !copied {
			ls = slices.Clone(ls)
			copied = true
		}
	}
	for _, st := range pipeline {
		switch {
		case st.Line != nil:
			if !st.Line.Matches(line) {
				return nil, false
			}
		case st.Parser == "json":
			own()
			ls = parseJSON(ls, stream, line)
		case st.Parser == "logfmt":
			own()
			ls = parseLogfmt(ls, stream, line)
		case st.Drop != nil:
			own()
			ls = ls.without(st.Drop...)
		case st.Label != nil:
			v, ok := ls.Get(st.Label.Name)
			if st.Label.isNum && ok {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					// Loki keeps the line and marks it, rather than drop it.
					own()
					ls = ls.set("__error__", "LabelFilterErr")
					continue
				}
			}
			if !st.Label.Matches(v, ok) {
				return nil, false
			}
		}
	}
	return ls, true
}
