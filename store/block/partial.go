package block

// Counting the rows of a time range by level and source needs only three
// columns of a block, a few kilobytes of its 200: a reader that knows where
// they lie can fetch just those (PostgreSQL reads an uncompressed
// out-of-line value chunk by chunk, so a slice of it costs only its
// chunks).

// HeadBytes is enough of a block's start to hold its whole header.
const HeadBytes = 256

// Span is where some bytes of a block lie.
type Span struct{ Off, Len int }

// briefColumns are the columns Briefs and a time, level and source filter
// read.
var briefColumns = [...]int{colTime, colLevel, colSource}

// BriefSpans reads a block's header from head (its first HeadBytes, or
// all of a shorter block; size is the block's length) and returns where
// the columns of Briefs lie.
func BriefSpans(head []byte, size int) ([]Span, error) {
	if len(head) == 0 || head[0] != Version {
		return nil, corrupt("header")
	}
	rd := cursor{b: head[1:]}
	rd.uvarint() // rows
	ncols := rd.uvarint()
	if rd.bad || ncols >= numCols {
		return nil, corrupt("column count %d", ncols)
	}
	ids := make([]int, ncols)
	lens := make([]int, ncols)
	for i := range ids {
		id := rd.byte()
		rd.byte() // encoding
		rd.uvarint()
		n := rd.uvarint()
		if rd.bad || n > uint64(size) {
			return nil, corrupt("column header %d", i)
		}
		ids[i], lens[i] = int(id), int(n)
	}
	off := len(head) - len(rd.b)
	var spans []Span
	for i, id := range ids {
		for _, want := range briefColumns {
			if id == want && lens[i] > 0 {
				spans = append(spans, Span{off, lens[i]})
			}
		}
		off += lens[i]
	}
	if off != size {
		return nil, corrupt("columns end at %d of %d bytes", off, size)
	}
	return spans, nil
}

// NewBriefReader reads a block of which only the header and the spans
// BriefSpans gave were fetched: data is the block's full length with
// those bytes in place. It serves Briefs and filters on time, level and
// source; asking it for any other column is an error, never a wrong answer.
func (c *Codec) NewBriefReader(data []byte) (*Reader, error) {
	r, err := c.NewReader(data)
	if err != nil {
		return nil, err
	}
	r.brief = true
	return r, nil
}
