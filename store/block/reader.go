package block

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// Reader reads one block, decompressing each column only when first
// needed: Match with a time, level or source filter reads only those
// small columns; messages are read for a keyword, metadata for a
// metadata filter, and the rest only by Events. A Reader is not safe for
// concurrent use; the slices it returns are the caller's.
type Reader struct {
	c    *Codec
	rows int
	cols [numCols]colRef
	// brief: only the columns of Briefs were fetched (NewBriefReader).
	brief bool

	micros  []int64
	levels  []byte
	srcDict []string
	srcIdx  []uint32
	msgOff  []uint32 // rows+1 offsets into msgs
	msgs    []byte
	traces  *traceCols
	ids     []uuid.UUID
	meta    *metaCols
}

type colRef struct {
	present bool
	enc     byte
	rawLen  int
	data    []byte
}

// NewReader checks a block's header; columns are decoded on demand. A
// column stored raw is read in place, so data must not change while the
// Reader is in use; nothing the Reader returns shares memory with it.
func (c *Codec) NewReader(data []byte) (*Reader, error) {
	if len(data) == 0 {
		return nil, corrupt("empty")
	}
	if data[0] != Version {
		return nil, corrupt("format version %d, this reader knows %d", data[0], Version)
	}
	r := &Reader{c: c}
	rd := cursor{b: data[1:]}
	rows := rd.uvarint()
	if rd.bad || rows == 0 || rows > MaxRows {
		return nil, corrupt("row count %d", rows)
	}
	r.rows = int(rows)
	ncols := rd.uvarint()
	if rd.bad || ncols >= numCols {
		return nil, corrupt("column count %d", ncols)
	}
	var order [numCols]int
	stored := make([]int, 0, ncols)
	for i := range int(ncols) {
		id, enc := rd.byte(), rd.byte()
		raw, n := rd.uvarint(), rd.uvarint()
		switch {
		case rd.bad:
			return nil, corrupt("column header %d truncated", i)
		case id == 0 || id >= numCols || r.cols[id].present:
			return nil, corrupt("column id %d", id)
		case enc != encRaw && enc != encZstd:
			return nil, corrupt("column %s: encoding %d", colNames[id], enc)
		case raw > maxColumnBytes || n > uint64(len(data)):
			return nil, corrupt("column %s: sizes %d/%d", colNames[id], raw, n)
		case enc == encRaw && raw != n:
			return nil, corrupt("column %s: raw size %d stored as %d", colNames[id], raw, n)
		}
		r.cols[id] = colRef{present: true, enc: enc, rawLen: int(raw)}
		order[i] = int(id)
		stored = append(stored, int(n))
	}
	for i, n := range stored {
		b := rd.take(n)
		if rd.bad {
			return nil, corrupt("column %s truncated", colNames[order[i]])
		}
		r.cols[order[i]].data = b
	}
	if len(rd.b) != 0 {
		return nil, corrupt("%d bytes after the last column", len(rd.b))
	}
	// Every block has a level per row: a row count the levels column does
	// not back is corrupt, and must not size any allocation.
	if r.cols[colLevel].rawLen != r.rows {
		return nil, corrupt("%d rows, %d levels", r.rows, r.cols[colLevel].rawLen)
	}
	return r, nil
}

// Len is the block's row count.
func (r *Reader) Len() int { return r.rows }

// column returns a column's decoded bytes; nil when it is absent.
func (r *Reader) column(id int) ([]byte, error) {
	if r.brief && id != colTime && id != colLevel && id != colSource {
		return nil, corrupt("column %s was not fetched", colNames[id])
	}
	ref := r.cols[id]
	if !ref.present || ref.rawLen == 0 {
		return nil, nil
	}
	if ref.enc == encRaw {
		return ref.data, nil
	}
	// zstd cannot expand a frame more than about 32,768 times (a 4-byte
	// block of 128 KiB); a larger claim is corrupt and must not be
	// allocated.
	if ref.rawLen > 32768*len(ref.data)+128<<10 {
		return nil, corrupt("column %s: %d bytes from %d", colNames[id], ref.rawLen, len(ref.data))
	}
	out, err := r.c.dec.DecodeAll(ref.data, make([]byte, 0, ref.rawLen))
	if err != nil {
		return nil, corrupt("column %s: %v", colNames[id], err)
	}
	if len(out) != ref.rawLen {
		return nil, corrupt("column %s: %d bytes, header says %d", colNames[id], len(out), ref.rawLen)
	}
	return out, nil
}

// cursor reads varints and slices, remembering the first overrun instead
// of panicking.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) uvarint() uint64 {
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.bad, c.b = true, nil
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) varint() int64 {
	v, n := binary.Varint(c.b)
	if n <= 0 {
		c.bad, c.b = true, nil
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) byte() byte {
	if len(c.b) == 0 {
		c.bad = true
		return 0
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v
}

func (c *cursor) take(n int) []byte {
	if n < 0 || n > len(c.b) {
		c.bad, c.b = true, nil
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

// lenBytes reads a uvarint length and that many bytes.
func (c *cursor) lenBytes() []byte {
	n := c.uvarint()
	if n > uint64(len(c.b)) {
		c.bad, c.b = true, nil
		return nil
	}
	return c.take(int(n))
}

func (r *Reader) loadTimes() error {
	if r.micros != nil {
		return nil
	}
	col, err := r.column(colTime)
	if err != nil {
		return err
	}
	rd := cursor{b: col}
	micros := make([]int64, r.rows)
	micros[0] = rd.varint()
	w := int(rd.byte())
	if rd.bad || w > 8 || len(rd.b) != w*(r.rows-1) {
		return corrupt("timestamps: %d bytes for %d rows", len(col), r.rows)
	}
	planes := rd.b
	n := r.rows - 1
	for i := 1; i < r.rows; i++ {
		var d uint64
		for p := range w {
			d |= uint64(planes[p*n+i-1]) << (8 * p)
		}
		prev := micros[i-1]
		if d > uint64(math.MaxInt64)-uint64(prev) {
			return corrupt("timestamps overflow")
		}
		micros[i] = int64(uint64(prev) + d)
	}
	r.micros = micros
	return nil
}

func (r *Reader) loadLevels() error {
	if r.levels != nil {
		return nil
	}
	col, err := r.column(colLevel)
	if err != nil {
		return err
	}
	if len(col) != r.rows {
		return corrupt("levels: %d bytes for %d rows", len(col), r.rows)
	}
	for _, l := range col {
		if l >= logs.NumLevels {
			return corrupt("level %d", l)
		}
	}
	r.levels = col
	return nil
}

func (r *Reader) loadSources() error {
	if r.srcIdx != nil {
		return nil
	}
	col, err := r.column(colSource)
	if err != nil {
		return err
	}
	rd := cursor{b: col}
	n := rd.uvarint()
	if rd.bad || n == 0 || n > uint64(r.rows) {
		return corrupt("sources: %d distinct for %d rows", n, r.rows)
	}
	dict := make([]string, n)
	for i := range dict {
		dict[i] = string(rd.lenBytes())
	}
	idx := make([]uint32, r.rows)
	for i := range idx {
		var v uint64
		if n <= 256 {
			v = uint64(rd.byte())
		} else {
			v = rd.uvarint()
		}
		if v >= n {
			return corrupt("source index %d of %d", v, n)
		}
		idx[i] = uint32(v)
	}
	if rd.bad || len(rd.b) != 0 {
		return corrupt("sources: column size")
	}
	r.srcDict, r.srcIdx = dict, idx
	return nil
}

func (r *Reader) loadMessages() error {
	if r.msgOff != nil {
		return nil
	}
	lens, err := r.column(colMsgLen)
	if err != nil {
		return err
	}
	text, err := r.column(colMsg)
	if err != nil {
		return err
	}
	nums, err := r.column(colMsgNum)
	if err != nil {
		return err
	}
	lr := cursor{b: lens}
	off := make([]uint32, r.rows+1)
	total := uint64(0)
	for i := range r.rows {
		total += lr.uvarint()
		// A byte of text gives at most 20 (a number's digits).
		if total > 20*uint64(len(text)) || total > maxColumnBytes {
			return corrupt("messages: lengths exceed the text")
		}
		off[i+1] = uint32(total)
	}
	if lr.bad || len(lr.b) != 0 {
		return corrupt("messages: lengths column size")
	}
	msgs := make([]byte, 0, total)
	nr := cursor{b: nums}
	t := 0
	for i := range r.rows {
		end := int(off[i+1])
		for len(msgs) < end {
			if t >= len(text) {
				return corrupt("messages: text too short")
			}
			c := text[t]
			t++
			switch c {
			case numMark:
				msgs = strconv.AppendUint(msgs, nr.uvarint(), 10)
				if nr.bad || len(msgs) > end {
					return corrupt("messages: number at row %d", i)
				}
			case escMark:
				if t >= len(text) || text[t] < numMark {
					return corrupt("messages: escape at row %d", i)
				}
				msgs = append(msgs, text[t])
				t++
			default:
				msgs = append(msgs, c)
			}
		}
	}
	if t != len(text) || len(nr.b) != 0 {
		return corrupt("messages: text and numbers left over")
	}
	r.msgOff, r.msgs = off, msgs
	return nil
}

func (r *Reader) message(i int) []byte { return r.msgs[r.msgOff[i]:r.msgOff[i+1]] }

// traceCols are the decoded trace id columns: each row refers to one
// entry (-1 for none); rows sharing a trace id share its entry.
type traceCols struct {
	ref     []int32
	entries [][]byte // 16 raw bytes (hex kind) or the id itself
	isHex   []bool
}

func (r *Reader) loadTraces() error {
	if r.traces != nil {
		return nil
	}
	kinds, err := r.column(colTraceKind)
	if err != nil {
		return err
	}
	t := &traceCols{ref: make([]int32, r.rows)}
	if kinds == nil {
		for i := range t.ref {
			t.ref[i] = -1
		}
		r.traces = t
		return nil
	}
	if len(kinds) != r.rows {
		return corrupt("trace kinds: %d bytes for %d rows", len(kinds), r.rows)
	}
	hx, err := r.column(colTraceHex)
	if err != nil {
		return err
	}
	other, err := r.column(colTraceOther)
	if err != nil {
		return err
	}
	hr, or := cursor{b: hx}, cursor{b: other}
	for i, k := range kinds {
		switch k {
		case traceNone:
			t.ref[i] = -1
		case traceSame:
			if i == 0 || t.ref[i-1] < 0 {
				return corrupt("trace id repeats nothing at row %d", i)
			}
			t.ref[i] = t.ref[i-1]
		case traceHex:
			t.ref[i] = int32(len(t.entries))
			t.entries = append(t.entries, hr.take(16))
			t.isHex = append(t.isHex, true)
		case traceOther:
			t.ref[i] = int32(len(t.entries))
			t.entries = append(t.entries, or.lenBytes())
			t.isHex = append(t.isHex, false)
		default:
			return corrupt("trace kind %d", k)
		}
	}
	if hr.bad || or.bad || len(hr.b) != 0 || len(or.b) != 0 {
		return corrupt("trace ids: column sizes")
	}
	r.traces = t
	return nil
}

// strings returns a function giving entry e's trace id. Shared, all the
// ids are made at once into one string; otherwise each on demand.
func (t *traceCols) strings(shared bool) func(e int32) string {
	if !shared {
		return func(e int32) string {
			if t.isHex[e] {
				return hex.EncodeToString(t.entries[e])
			}
			return string(t.entries[e])
		}
	}
	n := 0
	for e, b := range t.entries {
		if t.isHex[e] {
			n += 32
		} else {
			n += len(b)
		}
	}
	buf := make([]byte, 0, n)
	end := make([]int, len(t.entries))
	for e, b := range t.entries {
		if t.isHex[e] {
			buf = hex.AppendEncode(buf, b)
		} else {
			buf = append(buf, b...)
		}
		end[e] = len(buf)
	}
	all := string(buf)
	return func(e int32) string {
		start := 0
		if e > 0 {
			start = end[e-1]
		}
		return all[start:end[e]]
	}
}

func (r *Reader) loadIDs() error {
	if r.ids != nil {
		return nil
	}
	if err := r.loadTimes(); err != nil {
		return err
	}
	pre, err := r.column(colIDPrefix)
	if err != nil {
		return err
	}
	rest, err := r.column(colIDRest)
	if err != nil {
		return err
	}
	raw, err := r.column(colIDRaw)
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, r.rows)
	pr, rr := cursor{b: pre}, cursor{b: raw}
	br := bitReader{buf: rest}
	for i := range ids {
		u := pr.uvarint()
		id := &ids[i]
		if u&1 == 1 {
			if u != 1 {
				return corrupt("id prefix at row %d", i)
			}
			copy(id[:], rr.take(16))
			continue
		}
		v := unzigzag(u>>1) + floorDiv(r.micros[i], 1000)
		if v < 0 || v >= 1<<48 {
			return corrupt("id prefix at row %d", i)
		}
		for j := range 6 {
			id[j] = byte(v >> (40 - 8*j))
		}
		a := br.read(12)
		b := br.read(30)
		c := br.read(32)
		id[6], id[7] = 0x70|byte(a>>8), byte(a)
		id[8], id[9], id[10], id[11] = 0x80|byte(b>>24), byte(b>>16), byte(b>>8), byte(b)
		binary.BigEndian.PutUint32(id[12:], uint32(c))
	}
	if pr.bad || rr.bad || br.bad || len(pr.b) != 0 || len(rr.b) != 0 || len(br.buf) != 0 {
		return corrupt("ids: column sizes")
	}
	r.ids = ids
	return nil
}

// bitReader reads what bitWriter packs.
type bitReader struct {
	buf []byte
	acc uint64
	n   uint
	bad bool
}

func (r *bitReader) read(bits uint) uint64 {
	for r.n < bits {
		if len(r.buf) == 0 {
			r.bad = true
			return 0
		}
		r.acc |= uint64(r.buf[0]) << r.n
		r.buf = r.buf[1:]
		r.n += 8
	}
	v := r.acc & (1<<bits - 1)
	r.acc >>= bits
	r.n -= bits
	return v
}

// metaCols are the decoded metadata columns.
type metaCols struct {
	keys   [][]byte  // raw keys
	shapes [][]int32 // key indexes
	// kind[i] is -2 for no metadata, -1 for whole, else the shape; first[i]
	// is then the row's index into whole, or its first entry in refs.
	kind  []int32
	first []int32
	refs  []int32 // value index of each key of each shaped row
	// Value v is vals[valOff[2v]:valOff[2v+1]]; vals holds the plain values
	// and then the dictionaries.
	valOff []uint32
	vals   []byte
	whole  [][]byte
}

func (m *metaCols) value(v int32) []byte { return m.vals[m.valOff[2*v]:m.valOff[2*v+1]] }

func (r *Reader) loadMeta() error {
	if r.meta != nil {
		return nil
	}
	col, err := r.column(colMetaShape)
	if err != nil {
		return err
	}
	m := &metaCols{kind: make([]int32, r.rows), first: make([]int32, r.rows)}
	if col == nil {
		for i := range m.kind {
			m.kind[i] = -2
		}
		r.meta = m
		return nil
	}
	plainVals, err := r.column(colMetaVal)
	if err != nil {
		return err
	}
	rd := cursor{b: col}
	nk := rd.uvarint()
	if nk > uint64(len(col)) {
		return corrupt("metadata: %d keys", nk)
	}
	m.keys = make([][]byte, nk)
	mode := make([]byte, nk)
	// dictOff[k] holds key k's dictionary as offsets into m.vals.
	dictOff := make([][]uint32, nk)
	m.vals = plainVals
	for k := range m.keys {
		m.keys[k] = rd.lenBytes()
		mode[k] = rd.byte()
		switch mode[k] {
		case keyPlain:
		case keyDict:
			d := rd.uvarint()
			if d == 0 || d > 256 {
				return corrupt("metadata: dictionary of %d", d)
			}
			for range d {
				v := rd.lenBytes()
				if len(m.vals)+len(v) > maxColumnBytes {
					return corrupt("metadata: dictionaries too large")
				}
				start := uint32(len(m.vals))
				// plainVals has no spare capacity (a decoded column, or
				// a capped slice of the block): the first append copies
				// it, and the caller's bytes are never written.
				m.vals = append(m.vals, v...)
				dictOff[k] = append(dictOff[k], start, uint32(len(m.vals)))
			}
		default:
			return corrupt("metadata: key mode %d", mode[k])
		}
		if rd.bad {
			return corrupt("metadata: keys truncated")
		}
	}
	ns := rd.uvarint()
	if ns > uint64(len(col)) {
		return corrupt("metadata: %d shapes", ns)
	}
	m.shapes = make([][]int32, ns)
	for i := range m.shapes {
		n := rd.uvarint()
		if n > uint64(len(rd.b)) {
			return corrupt("metadata: shape of %d keys", n)
		}
		s := make([]int32, n)
		for j := range s {
			k := rd.uvarint()
			if k >= nk {
				return corrupt("metadata: key %d of %d", k, nk)
			}
			s[j] = int32(k)
		}
		m.shapes[i] = s
	}
	groupSize := make([]int, nk+1)
	nrefs := 0
	// Each value takes at least a byte of the lengths or indexes column.
	maxRefs := r.cols[colMetaLen].rawLen + r.cols[colMetaIdx].rawLen
	for i := range m.kind {
		v := rd.uvarint()
		switch {
		case v == 0:
			m.kind[i] = -2
		case v == 1:
			m.kind[i] = -1
		case v-2 < ns:
			s := int32(v - 2)
			m.kind[i] = s
			for _, k := range m.shapes[s] {
				groupSize[k+1]++
			}
			nrefs += len(m.shapes[s])
			if nrefs > maxRefs {
				return corrupt("metadata: more values than their columns hold")
			}
		default:
			return corrupt("metadata: shape %d of %d", v-2, ns)
		}
	}
	if rd.bad || len(rd.b) != 0 {
		return corrupt("metadata shapes: column size")
	}

	// Resolve every value, in grouped order, to its bytes.
	lens, err := r.column(colMetaLen)
	if err != nil {
		return err
	}
	idx, err := r.column(colMetaIdx)
	if err != nil {
		return err
	}
	m.valOff = make([]uint32, 0, 2*nrefs)
	lr, ir := cursor{b: lens}, cursor{b: idx}
	var off uint64
	for k := range nk {
		for range groupSize[k+1] {
			if mode[k] == keyDict {
				d := int(ir.byte())
				if 2*d >= len(dictOff[k]) {
					return corrupt("metadata: dictionary index %d", d)
				}
				m.valOff = append(m.valOff, dictOff[k][2*d], dictOff[k][2*d+1])
				continue
			}
			n := lr.uvarint()
			if n > uint64(len(plainVals))-off {
				return corrupt("metadata: value lengths exceed %d bytes", len(plainVals))
			}
			m.valOff = append(m.valOff, uint32(off), uint32(off+n))
			off += n
		}
	}
	if lr.bad || ir.bad || len(lr.b) != 0 || len(ir.b) != 0 || off != uint64(len(plainVals)) {
		return corrupt("metadata: values and their lengths disagree")
	}

	// Value j of key k in row order is at group k's start + j.
	for k := 1; k < len(groupSize); k++ {
		groupSize[k] += groupSize[k-1]
	}
	next := groupSize[:nk] // next value index of each key
	m.refs = make([]int32, 0, nrefs)
	whole, err := r.column(colMetaWhole)
	if err != nil {
		return err
	}
	wr := cursor{b: whole}
	for i, s := range m.kind {
		switch {
		case s == -1:
			m.first[i] = int32(len(m.whole))
			b := wr.lenBytes()
			if wr.bad {
				return corrupt("metadata: whole column truncated")
			}
			m.whole = append(m.whole, b)
		case s >= 0:
			m.first[i] = int32(len(m.refs))
			for _, k := range m.shapes[s] {
				m.refs = append(m.refs, int32(next[k]))
				next[k]++
			}
		}
	}
	if len(wr.b) != 0 {
		return corrupt("metadata: whole column size")
	}
	r.meta = m
	return nil
}

// size is the length of row i's metadata text.
func (m *metaCols) size(i int) int {
	switch s := m.kind[i]; {
	case s == -2:
		return 0
	case s == -1:
		return len(m.whole[m.first[i]])
	default:
		n := 1
		for j, k := range m.shapes[s] {
			v := m.refs[int(m.first[i])+j]
			n += len(m.keys[k]) + 4 + int(m.valOff[2*v+1]-m.valOff[2*v])
		}
		return max(n, 2)
	}
}

// appendMetadata appends row i's metadata text and reports whether it has
// any (nil metadata has none; empty metadata has, of length 0).
func (m *metaCols) appendMetadata(dst []byte, i int) ([]byte, bool) {
	switch s := m.kind[i]; {
	case s == -2:
		return dst, false
	case s == -1:
		return append(dst, m.whole[m.first[i]]...), true
	default:
		dst = append(dst, '{')
		for j, k := range m.shapes[s] {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, m.keys[k]...)
			dst = append(dst, '"', ':')
			dst = append(dst, m.value(m.refs[int(m.first[i])+j])...)
		}
		return append(dst, '}'), true
	}
}

// All returns every event of the block, in order.
func (r *Reader) All() ([]logs.Event, error) {
	rows := make([]int, r.rows)
	for i := range rows {
		rows[i] = i
	}
	return r.Events(rows)
}

// Events returns the events of the given rows (indexes as Match returns
// them), in the order given.
func (r *Reader) Events(rows []int) ([]logs.Event, error) {
	for _, i := range rows {
		if i < 0 || i >= r.rows {
			return nil, corrupt("row %d of %d", i, r.rows)
		}
	}
	for _, load := range []func() error{r.loadTimes, r.loadIDs, r.loadLevels, r.loadSources, r.loadMessages, r.loadTraces, r.loadMeta} {
		if err := load(); err != nil {
			return nil, err
		}
	}
	// Most of a block: its messages, trace ids and metadata share one
	// string or buffer each (a few allocations, not a few per row). A few
	// rows copy their own, so that a page does not keep a whole block
	// alive.
	shared := len(rows) >= r.rows/4
	var allMsgs string
	var metaBuf []byte
	traces := r.traces.strings(shared)
	if shared {
		allMsgs = string(r.msgs)
		n := 0
		for _, i := range rows {
			n += r.meta.size(i)
		}
		metaBuf = make([]byte, 0, n)
	}
	out := make([]logs.Event, len(rows))
	for n, i := range rows {
		e := &out[n]
		e.ID = r.ids[i]
		e.Timestamp = time.UnixMicro(r.micros[i]).UTC()
		e.Level = logs.Level(r.levels[i])
		e.Source = r.srcDict[r.srcIdx[i]]
		if shared {
			e.Message = allMsgs[r.msgOff[i]:r.msgOff[i+1]]
		} else {
			e.Message = string(r.message(i))
		}
		if ref := r.traces.ref[i]; ref >= 0 {
			e.TraceID = traces(ref)
		}
		if !shared {
			metaBuf = make([]byte, 0, r.meta.size(i))
		}
		start := len(metaBuf)
		var has bool
		metaBuf, has = r.meta.appendMetadata(metaBuf, i)
		if has {
			e.Metadata = json.RawMessage(metaBuf[start:len(metaBuf):len(metaBuf)])
		}
	}
	return out, nil
}

// Keys returns the (timestamp, id) of the given rows: enough to merge
// matches of several blocks into one page before reading whole events.
func (r *Reader) Keys(rows []int) ([]logs.Cursor, error) {
	if err := r.loadIDs(); err != nil { // loads the times too
		return nil, err
	}
	out := make([]logs.Cursor, len(rows))
	for n, i := range rows {
		if i < 0 || i >= r.rows {
			return nil, corrupt("row %d of %d", i, r.rows)
		}
		out[n] = logs.Cursor{TS: time.UnixMicro(r.micros[i]).UTC(), ID: r.ids[i]}
	}
	return out, nil
}

// timeRange returns the rows [lo, hi) within f's window.
func (r *Reader) timeRange(f *Filter) (lo, hi int, err error) {
	if f.Start.IsZero() && f.End.IsZero() {
		return 0, r.rows, nil
	}
	start, end, empty := f.window()
	if empty {
		return 0, 0, nil
	}
	if err := r.loadTimes(); err != nil {
		return 0, 0, err
	}
	lo = sort.Search(r.rows, func(i int) bool { return r.micros[i] >= start })
	hi = sort.Search(r.rows, func(i int) bool { return r.micros[i] > end })
	return lo, max(lo, hi), nil
}
