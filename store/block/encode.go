package block

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/logengine/logengine/store/logs"
)

// minCompress is the raw size below which a column is stored as is:
// a zstd frame costs about ten bytes of headers.
const minCompress = 32

// maxUnixSec keeps a timestamp's Unix microseconds within an int64.
const maxUnixSec = (1<<63-1)/1_000_000 - 1

// encoder is the scratch space of one Encode, pooled by the Codec so that
// its buffers (and the 2 MiB trigram set) are reused.
type encoder struct {
	cols [numCols][]byte
	comp [numCols][]byte
	// chunks lists the ends of a column's parts compressed as separate
	// zstd frames, each with its own entropy tables (the timestamp planes,
	// the metadata keys); empty for one frame.
	chunks [numCols][]int
	micros []int64

	sources map[string]int
	dict    []string

	// trigramSeen has one bit per possible trigram (2^24): the distinct
	// trigrams of a block are found without a map. Every bit set is in
	// trigrams and cleared before the encoder is reused.
	trigramSeen []uint64
	trigrams    []uint32
	hashes      []uint64

	meta metaEncoder
}

func newEncoder() *encoder {
	return &encoder{
		sources:     make(map[string]int),
		trigramSeen: make([]uint64, 1<<24/64),
		meta: metaEncoder{
			keys:    make(map[string]int),
			shapes:  make(map[string]int),
			dictIdx: make(map[string]int),
		},
	}
}

// compareEvents orders events by (timestamp in microseconds, id): the
// order of a block, and of PostgreSQL's (ts, id).
func compareEvents(a, b *logs.Event) int {
	if c := cmp.Compare(a.Timestamp.UnixMicro(), b.Timestamp.UnixMicro()); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

func (e *encoder) encode(zenc *zstd.Encoder, events []logs.Event) (Block, error) {
	for i := range events {
		ev := &events[i]
		if !ev.Level.Valid() {
			return Block{}, fmt.Errorf("block: event %d: invalid level %d", i, ev.Level)
		}
		if s := ev.Timestamp.Unix(); s < -maxUnixSec || s > maxUnixSec {
			return Block{}, fmt.Errorf("block: event %d: timestamp %v out of range", i, ev.Timestamp)
		}
	}
	sorted := e.sort(events)
	for i := range e.cols {
		e.cols[i] = e.cols[i][:0]
		e.chunks[i] = e.chunks[i][:0]
	}

	var sum Summary
	sum.Rows = len(sorted)
	e.timestamps(sorted)
	sum.MinTime = time.UnixMicro(e.micros[0]).UTC()
	sum.MaxTime = time.UnixMicro(e.micros[len(e.micros)-1]).UTC()
	e.ids(sorted)
	for i := range sorted {
		l := sorted[i].Level
		e.cols[colLevel] = append(e.cols[colLevel], byte(l))
		sum.Levels[l]++
	}
	sum.Sources = e.sourceColumn(sorted)
	sum.MessageBloom = e.messages(sorted)
	sum.TraceBloom = e.traces(sorted)
	e.hashes = e.meta.encode(sorted, &e.cols, &e.chunks, e.hashes[:0])
	sum.MetaBloom = newBloom(e.hashes)

	return Block{Data: e.assemble(zenc, len(sorted)), Summary: sum}, nil
}

// sort returns events in block order: events itself when already sorted,
// else a sorted copy (equal keys in their order). It sorts small keys
// rather than whole events.
func (e *encoder) sort(events []logs.Event) []logs.Event {
	sorted := true
	for i := 1; i < len(events) && sorted; i++ {
		sorted = compareEvents(&events[i-1], &events[i]) <= 0
	}
	if sorted {
		return events
	}
	type key struct {
		micros int64
		id     [16]byte
		i      int
	}
	keys := make([]key, len(events))
	for i := range events {
		keys[i] = key{events[i].Timestamp.UnixMicro(), events[i].ID, i}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.micros, b.micros); c != 0 {
			return c
		}
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	out := make([]logs.Event, len(events))
	for n, k := range keys {
		out[n] = events[k.i]
	}
	return out
}

// timestamps writes the first timestamp and the byte planes of the
// deltas, and marks the planes as separate frames.
func (e *encoder) timestamps(evs []logs.Event) {
	e.micros = e.micros[:0]
	var maxDelta uint64
	for i := range evs {
		m := evs[i].Timestamp.UnixMicro()
		if i > 0 {
			maxDelta = max(maxDelta, uint64(m-e.micros[i-1]))
		}
		e.micros = append(e.micros, m)
	}
	w := 0
	for d := maxDelta; d > 0; d >>= 8 {
		w++
	}
	c := binary.AppendVarint(e.cols[colTime], e.micros[0])
	c = append(c, byte(w))
	e.chunks[colTime] = append(e.chunks[colTime][:0], len(c))
	for p := range w {
		for i := 1; i < len(e.micros); i++ {
			c = append(c, byte(uint64(e.micros[i]-e.micros[i-1])>>(8*p)))
		}
		e.chunks[colTime] = append(e.chunks[colTime], len(c))
	}
	e.cols[colTime] = c
}

// ids writes each id. A UUIDv7's 6-byte prefix is its creation time in
// milliseconds, nearly always the event's own millisecond or close to it,
// so it shrinks to a small delta, and of its other 10 bytes only 74 bits
// are random. Other ids are kept whole, so a block mixing client-supplied
// ids with generated ones loses nothing on the UUIDv7s.
func (e *encoder) ids(evs []logs.Event) {
	p, raw := e.cols[colIDPrefix], e.cols[colIDRaw]
	bw := bitWriter{buf: e.cols[colIDRest]}
	for i := range evs {
		id := &evs[i].ID
		if !isV7(id) {
			p = append(p, 1)
			raw = append(raw, id[:]...)
			continue
		}
		d := int64(prefix48(id[:6])) - floorDiv(e.micros[i], 1000)
		p = binary.AppendUvarint(p, zigzag(d)<<1)
		bw.write(uint64(id[6]&0x0f)<<8|uint64(id[7]), 12)
		bw.write(uint64(id[8]&0x3f)<<24|uint64(id[9])<<16|uint64(id[10])<<8|uint64(id[11]), 30)
		bw.write(uint64(binary.BigEndian.Uint32(id[12:])), 32)
	}
	e.cols[colIDPrefix], e.cols[colIDRaw], e.cols[colIDRest] = p, raw, bw.flush()
}

// isV7 reports whether id is a UUIDv7 of the RFC 9562 variant.
func isV7(id *uuid.UUID) bool { return id[6]>>4 == 7 && id[8]>>6 == 2 }

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// bitWriter packs values of up to 32 bits, least significant bit first.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (w *bitWriter) write(v uint64, bits uint) {
	w.acc |= v << w.n
	w.n += bits
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc))
	}
	return w.buf
}

func prefix48(b []byte) uint64 {
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// sourceColumn writes the sorted source dictionary and each row's index,
// and returns the dictionary.
func (e *encoder) sourceColumn(evs []logs.Event) []string {
	clear(e.sources)
	e.dict = e.dict[:0]
	for i := range evs {
		if _, ok := e.sources[evs[i].Source]; !ok {
			e.sources[evs[i].Source] = 0
			e.dict = append(e.dict, evs[i].Source)
		}
	}
	slices.Sort(e.dict)
	for i, s := range e.dict {
		e.sources[s] = i
	}
	c := binary.AppendUvarint(e.cols[colSource], uint64(len(e.dict)))
	for _, s := range e.dict {
		c = binary.AppendUvarint(c, uint64(len(s)))
		c = append(c, s...)
	}
	small := len(e.dict) <= 256
	for i := range evs {
		idx := e.sources[evs[i].Source]
		if small {
			c = append(c, byte(idx))
		} else {
			c = binary.AppendUvarint(c, uint64(idx))
		}
	}
	e.cols[colSource] = c
	return slices.Clone(e.dict)
}

// Bytes that mark the numbers taken out of the message text.
const (
	numMark = 0xfe // a number from the numbers column
	escMark = 0xff // the next byte is literal
)

// messages writes the message columns and returns the trigram filter.
func (e *encoder) messages(evs []logs.Event) []byte {
	lens, text, nums := e.cols[colMsgLen], e.cols[colMsg], e.cols[colMsgNum]
	e.trigrams = e.trigrams[:0]
	for i := range evs {
		m := evs[i].Message
		lens = binary.AppendUvarint(lens, uint64(len(m)))
		text, nums = appendMessage(text, nums, m)
		e.addTrigrams(m)
	}
	e.cols[colMsgLen], e.cols[colMsg], e.cols[colMsgNum] = lens, text, nums

	hs := e.hashes[:0]
	var tri [3]byte
	for _, t := range e.trigrams {
		e.trigramSeen[t>>6] &^= 1 << (t & 63)
		tri[0], tri[1], tri[2] = byte(t>>16), byte(t>>8), byte(t)
		hs = append(hs, itemHash(tri[:]))
	}
	e.hashes = hs
	return newBloomDistinct(hs) // one hash per distinct trigram
}

// appendMessage appends m to the text and numbers columns (see the
// package documentation).
func appendMessage(text, nums []byte, m string) ([]byte, []byte) {
	for i := 0; i < len(m); {
		c := m[i]
		if isDigit(c) && (i == 0 || !isLetter(m[i-1])) {
			j := i + 1
			for j < len(m) && isDigit(m[j]) {
				j++
			}
			if j-i > 19 || c == '0' && j-i > 1 {
				text = append(text, m[i:j]...)
			} else {
				var n uint64
				for _, d := range []byte(m[i:j]) {
					n = n*10 + uint64(d-'0')
				}
				nums = binary.AppendUvarint(nums, n)
				text = append(text, numMark)
			}
			i = j
			continue
		}
		if c >= numMark {
			text = append(text, escMark)
		}
		text = append(text, c)
		i++
	}
	return text, nums
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// addTrigrams records the distinct trigrams of strings.ToLower(m). An
// ASCII message is lower-cased on the fly, which gives the same bytes
// without allocating.
func (e *encoder) addTrigrams(m string) {
	ascii := true
	for i := 0; i < len(m); i++ {
		if m[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		m = strings.ToLower(m)
	}
	var t uint32
	for i := 0; i < len(m); i++ {
		c := m[i]
		if ascii && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		t = (t<<8 | uint32(c)) & 0xffffff
		if i >= 2 && e.trigramSeen[t>>6]&(1<<(t&63)) == 0 {
			e.trigramSeen[t>>6] |= 1 << (t & 63)
			e.trigrams = append(e.trigrams, t)
		}
	}
}

// traces writes the trace id columns and returns the trace filter.
func (e *encoder) traces(evs []logs.Event) []byte {
	kinds, hx, other := e.cols[colTraceKind], e.cols[colTraceHex], e.cols[colTraceOther]
	hs := e.hashes[:0]
	any := false
	for i := range evs {
		t := evs[i].TraceID
		switch {
		case t == "":
			kinds = append(kinds, traceNone)
			continue
		case i > 0 && t == evs[i-1].TraceID:
			kinds = append(kinds, traceSame)
			any = true
			continue
		case isLowerHex32(t):
			kinds = append(kinds, traceHex)
			hx = appendHex16(hx, t)
		default:
			kinds = append(kinds, traceOther)
			other = binary.AppendUvarint(other, uint64(len(t)))
			other = append(other, t...)
		}
		any = true
		hs = append(hs, itemHash([]byte(t)))
	}
	if !any {
		kinds = kinds[:0] // no column: no row has a trace id
	}
	e.cols[colTraceKind], e.cols[colTraceHex], e.cols[colTraceOther] = kinds, hx, other
	e.hashes = hs
	return newBloom(hs)
}

func isLowerHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func appendHex16(dst []byte, s string) []byte {
	for i := 0; i < 32; i += 2 {
		dst = append(dst, unhex(s[i])<<4|unhex(s[i+1]))
	}
	return dst
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// assemble compresses the columns and lays out the block.
func (e *encoder) assemble(zenc *zstd.Encoder, rows int) []byte {
	var stored [numCols][]byte
	var encs [numCols]byte
	hdr := binary.AppendUvarint([]byte{Version}, uint64(rows))
	ncols := 0
	for id := 1; id < numCols; id++ {
		if len(e.cols[id]) > 0 {
			ncols++
		}
	}
	hdr = binary.AppendUvarint(hdr, uint64(ncols))
	total := 0
	for id := 1; id < numCols; id++ {
		raw := e.cols[id]
		if len(raw) == 0 {
			continue
		}
		stored[id], encs[id] = raw, encRaw
		if len(raw) >= minCompress {
			e.comp[id] = e.comp[id][:0]
			start := 0
			for _, end := range append(e.chunks[id], len(raw)) {
				if end > start {
					e.comp[id] = zenc.EncodeAll(raw[start:end], e.comp[id])
				}
				start = end
			}
			if len(e.comp[id]) < len(raw) {
				stored[id], encs[id] = e.comp[id], encZstd
			}
		}
		hdr = append(hdr, byte(id), encs[id])
		hdr = binary.AppendUvarint(hdr, uint64(len(raw)))
		hdr = binary.AppendUvarint(hdr, uint64(len(stored[id])))
		total += len(stored[id])
	}
	out := make([]byte, 0, len(hdr)+total)
	out = append(out, hdr...)
	for id := 1; id < numCols; id++ {
		out = append(out, stored[id]...)
	}
	return out
}

// metaEncoder splits compact metadata objects into shapes and per-key
// values (see the package documentation) and collects the metadata
// filter's items.
type metaEncoder struct {
	keys      map[string]int // raw key -> index
	keyList   []string
	shapes    map[string]int // key index sequence -> shape index
	shapeDict []byte
	rows      []byte
	vals      []metaVal
	grouped   []metaVal
	counts    []int // group starts, then the end
	next      []int
	dict      [][]byte
	dictIdx   map[string]int
	members   []member
	sig       []byte
	item, buf []byte
}

type metaVal struct {
	key int
	val []byte
}

// encode writes the metadata columns and appends the filter's item hashes
// to hashes.
//
// Each key's values are a separate zstd frame (chunks), so that each gets
// its own entropy tables: a region and a status code have nothing in
// common.
func (me *metaEncoder) encode(evs []logs.Event, cols *[numCols][]byte, chunks *[numCols][]int, hashes []uint64) []uint64 {
	clear(me.keys)
	clear(me.shapes)
	me.keyList, me.shapeDict, me.rows, me.vals = me.keyList[:0], me.shapeDict[:0], me.rows[:0], me.vals[:0]
	whole := cols[colMetaWhole]
	any := false
	for i := range evs {
		m := evs[i].Metadata
		if m == nil {
			me.rows = append(me.rows, 0)
			continue
		}
		any = true
		ms, compact, ok := me.members[:0], false, false
		if json.Valid(m) {
			ms, compact, ok = scanObject(ms, m)
		}
		me.members = ms
		if ok {
			hashes = me.addHashes(hashes, ms)
		}
		if !ok || !compact {
			me.rows = append(me.rows, 1)
			whole = binary.AppendUvarint(whole, uint64(len(m)))
			whole = append(whole, m...)
			continue
		}
		me.sig = me.sig[:0]
		for _, mb := range ms {
			k, ok := me.keys[string(mb.key)]
			if !ok {
				k = len(me.keyList)
				me.keys[string(mb.key)] = k
				me.keyList = append(me.keyList, string(mb.key))
			}
			me.sig = binary.AppendUvarint(me.sig, uint64(k))
			me.vals = append(me.vals, metaVal{key: k, val: mb.val})
		}
		s, ok := me.shapes[string(me.sig)]
		if !ok {
			s = len(me.shapes)
			me.shapes[string(me.sig)] = s
			me.shapeDict = binary.AppendUvarint(me.shapeDict, uint64(len(ms)))
			me.shapeDict = append(me.shapeDict, me.sig...)
		}
		me.rows = binary.AppendUvarint(me.rows, uint64(2+s))
	}
	cols[colMetaWhole] = whole
	if !any {
		return hashes // no metadata columns at all
	}

	// Values grouped by key, each group in row order: a counting sort.
	me.counts = slices.Grow(me.counts[:0], len(me.keyList)+1)[:len(me.keyList)+1]
	clear(me.counts)
	for _, v := range me.vals {
		me.counts[v.key+1]++
	}
	for k := 1; k < len(me.counts); k++ {
		me.counts[k] += me.counts[k-1]
	}
	me.grouped = slices.Grow(me.grouped[:0], len(me.vals))[:len(me.vals)]
	next := append(me.next[:0], me.counts...)
	for _, v := range me.vals {
		me.grouped[next[v.key]] = v
		next[v.key]++
	}
	me.next = next

	c := binary.AppendUvarint(cols[colMetaShape], uint64(len(me.keyList)))
	lens, vals, idx := cols[colMetaLen], cols[colMetaVal], cols[colMetaIdx]
	for k, key := range me.keyList {
		c = binary.AppendUvarint(c, uint64(len(key)))
		c = append(c, key...)
		group := me.grouped[me.counts[k]:me.counts[k+1]]
		if !me.dictionary(group) {
			c = append(c, keyPlain)
			for _, v := range group {
				lens = binary.AppendUvarint(lens, uint64(len(v.val)))
				vals = append(vals, v.val...)
			}
			chunks[colMetaLen] = append(chunks[colMetaLen], len(lens))
			chunks[colMetaVal] = append(chunks[colMetaVal], len(vals))
			continue
		}
		c = append(c, keyDict)
		c = binary.AppendUvarint(c, uint64(len(me.dict)))
		for _, d := range me.dict {
			c = binary.AppendUvarint(c, uint64(len(d)))
			c = append(c, d...)
		}
		for _, v := range group {
			idx = append(idx, byte(me.dictIdx[string(v.val)]))
		}
		chunks[colMetaIdx] = append(chunks[colMetaIdx], len(idx))
	}
	c = binary.AppendUvarint(c, uint64(len(me.shapes)))
	c = append(c, me.shapeDict...)
	cols[colMetaShape] = append(c, me.rows...)
	cols[colMetaLen], cols[colMetaVal], cols[colMetaIdx] = lens, vals, idx
	// Drop the references into the caller's events before the encoder
	// goes back to the pool.
	clear(me.vals)
	clear(me.grouped)
	clear(me.dict)
	clear(me.members)
	return hashes
}

// dictionary decides whether a key's values are few enough to store as a
// dictionary and a byte each (at most 256 distinct, each used four times
// on average), and if so leaves it in me.dict and me.dictIdx.
func (me *metaEncoder) dictionary(group []metaVal) bool {
	clear(me.dictIdx)
	me.dict = me.dict[:0]
	for _, v := range group {
		if _, ok := me.dictIdx[string(v.val)]; ok {
			continue
		}
		if len(me.dict) == 256 {
			return false
		}
		me.dictIdx[string(v.val)] = len(me.dict)
		me.dict = append(me.dict, v.val)
	}
	return len(me.dict)*4 <= len(group)
}

// addHashes appends the filter items of an object's members.
func (me *metaEncoder) addHashes(hashes []uint64, ms []member) []uint64 {
	for _, mb := range ms {
		key := mb.key
		if !plain(key) {
			k, ok := keyText(key)
			if !ok {
				continue
			}
			key = []byte(k)
		}
		me.buf = valueTexts(mb.val, me.buf, func(text []byte) {
			me.item = append(append(append(me.item[:0], key...), 0), text...)
			hashes = append(hashes, itemHash(me.item))
		})
	}
	return hashes
}
