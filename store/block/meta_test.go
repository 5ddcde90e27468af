package block

import (
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// typedText must decide "reads as a number or boolean" exactly as
// store.addMeta does, with json.Unmarshal.
func TestTypedTextAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		"500", " 500 ", "\t5e2\n", "-0", "0", "00", "01", "1.", ".5", "1e", "1e+", "-", "+1",
		"1.5e-3", "1E400", "-1e400", "1e-400", "123456789012345678901234567890", "0x10", "Infinity",
		"NaN", "true", "false", " true", "TRUE", "True", "null", `"500"`, "[1]", "{}", "", " ",
		"1 2", "1_000", "٣", "1e0400", "0e99999999999999999999", "1e-99999999999999999999",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "0123456789-+.eE tfrueals\"x"
	for range 20000 {
		var b strings.Builder
		for range 1 + rng.IntN(8) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		inputs = append(inputs, b.String())
	}
	for _, s := range inputs {
		var v any
		err := json.Unmarshal([]byte(s), &v)
		want := false
		if err == nil {
			switch v.(type) {
			case float64, bool:
				want = true
			}
		}
		if _, got := typedText(s); got != want {
			t.Errorf("typedText(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

// Two numbers have the same canonical text iff they are equal as exact
// decimals, as PostgreSQL's numeric compares them.
func TestCanonNumberIsExactDecimalEquality(t *testing.T) {
	same := [][]string{
		{"500", "500.0", "5e2", "5E+2", "0.5e3", "500.000", "50000e-2"},
		{"0", "-0", "0.0", "0e10", "-0.000E-7", "0e99999999999999999999"},
		{"123456789012345678901", "1.23456789012345678901e20"},
		{"-1.5", "-15e-1", "-0.15E1"},
	}
	for _, group := range same {
		want := string(appendCanonNumber(nil, []byte(group[0])))
		for _, n := range group[1:] {
			if got := string(appendCanonNumber(nil, []byte(n))); got != want {
				t.Errorf("canon(%s) = %s, canon(%s) = %s: want equal", n, got, group[0], want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	gen := func() string {
		var b strings.Builder
		if rng.IntN(3) == 0 {
			b.WriteByte('-')
		}
		if rng.IntN(3) == 0 {
			b.WriteByte('0')
		} else {
			b.WriteByte(byte('1' + rng.IntN(9)))
			for range rng.IntN(4) {
				b.WriteByte(byte('0' + rng.IntN(2)*rng.IntN(10)))
			}
		}
		if rng.IntN(2) == 0 {
			b.WriteByte('.')
			for range 1 + rng.IntN(3) {
				b.WriteByte(byte('0' + rng.IntN(2)*rng.IntN(10)))
			}
		}
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "e%d", rng.IntN(9)-4)
		}
		return b.String()
	}
	for range 50000 {
		a, b := gen(), gen()
		ra, _ := new(big.Rat).SetString(a)
		rb, _ := new(big.Rat).SetString(b)
		want := ra.Cmp(rb) == 0
		got := string(appendCanonNumber(nil, []byte(a))) == string(appendCanonNumber(nil, []byte(b)))
		if got != want {
			t.Fatalf("%s vs %s: canonical texts equal = %v, exact values equal = %v", a, b, got, want)
		}
	}
}

// The query side coerces invalid UTF-8 as json.Marshal does in
// store.addMeta.
func TestCoerceUTF8AgreesWithMarshal(t *testing.T) {
	for _, s := range []string{"plain", "é", "\xff", "a\xffb\xfe\xfd", "\xc3", "\xc3(", "\xed\xa0\x80", "€\x80"} {
		b, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if got := coerceUTF8(s); got != want {
			t.Errorf("coerceUTF8(%q) = %q, json.Marshal gives %q", s, got, want)
		}
	}
}

func TestScanObject(t *testing.T) {
	cases := []struct {
		in          string
		ok, compact bool
		members     string // key=value;...
	}{
		{`{}`, true, true, ""},
		{`{"a":1}`, true, true, "a=1;"},
		{`{"a":1,"b":"x,}","c":{"d":[1,{"e":"]"}]}}`, true, true, `a=1;b="x,}";c={"d":[1,{"e":"]"}]};`},
		{`{"a\"b":null,"a":true}`, true, true, `a\"b=null;a=true;`},
		{` {"a":1}`, true, false, "a=1;"},
		{`{"a" :1}`, true, false, "a=1;"},
		{`{"a":1 }`, true, false, "a=1;"},
		{"{\"a\":1}\n", true, false, "a=1;"},
		{`[1]`, false, false, ""},
		{`"a"`, false, false, ""},
		{`1`, false, false, ""},
	}
	for _, c := range cases {
		if !json.Valid([]byte(c.in)) {
			t.Fatalf("%s is not valid JSON", c.in)
		}
		ms, compact, ok := scanObject(nil, []byte(c.in))
		var got strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&got, "%s=%s;", m.key, m.val)
		}
		if ok != c.ok || (ok && (compact != c.compact || got.String() != c.members)) {
			t.Errorf("scanObject(%s) = %q compact %v ok %v; want %q %v %v", c.in, got.String(), compact, ok, c.members, c.compact, c.ok)
		}
	}
}
