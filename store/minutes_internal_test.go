package store

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestMinuteCellsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		var want minuteCells
		for range r.IntN(40) {
			want[r.IntN(len(want))] += 1 + r.Int64N(1<<40)
		}
		if r.IntN(10) == 0 {
			want[0], want[len(want)-1] = 1, 1<<62
		}
		var got minuteCells
		if err := got.add(want.encode()); err != nil {
			t.Fatalf("add(encode): %v", err)
		}
		if got != want {
			t.Fatalf("round trip differs")
		}
		// Adding again doubles every cell.
		if err := got.add(want.encode()); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != 2*want[i] {
				t.Fatalf("cell %d: %d after adding twice, want %d", i, got[i], 2*want[i])
			}
		}
	}
}

func TestMinuteCellsRefuseCorruptRows(t *testing.T) {
	var full minuteCells
	full[len(full)-1] = 7
	valid := full.encode()
	for name, b := range map[string][]byte{
		"empty":             nil,
		"unknown format":    {9},
		"cell past the end": append(binary.AppendUvarint([]byte{minutesFormat}, uint64(len(full))), 1),
		"truncated count":   valid[:len(valid)-1],
		"truncated varint":  {minutesFormat, 0x80},
	} {
		var c minuteCells
		if err := c.add(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
