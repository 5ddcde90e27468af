// Package block is logengine's storage format for logs: compressed,
// columnar blocks of events sorted by (timestamp, id), each with a small
// Summary (a skip index: time range, counts per level, sources and bloom
// filters) that lets a query skip almost every block without reading it.
//
// It is a pure codec: it knows nothing of PostgreSQL, which stores one
// block per row (Block.Data as bytea, the Summary in columns beside it).
//
//	codec, _ := block.NewCodec(block.CompressionDefault) // once; share it
//	b, _ := codec.Encode(events)          // a fresh block from a batch
//	m, _ := codec.Merge(b1.Data, b2.Data) // the background merge
//
//	f := block.SearchFilter(search)
//	if b.Summary.MayMatch(f) {            // the skip index (or its SQL twin)
//	    r, _ := codec.NewReader(b.Data)
//	    rows, _ := r.Match(f)             // exact, row by row
//	    keys, _ := r.Keys(rows)           // (ts, id) to page across blocks
//	    events, _ := r.Events(rows[:n])   // whole rows only for the page
//	}
//
// In SQL, a summary's blooms are tested with get_bit on the hashes of
// KeywordHashes, TraceHashes and MetaHashes (see MayContain).
//
// # Format (version 1)
//
// A block is a version byte (1), uvarint row count, uvarint column count,
// then for each column a header (id byte, encoding byte: 0 raw, 1 zstd;
// uvarint raw length; uvarint stored length), then the column payloads in
// header order. A column a block does not need (no trace ids, no
// metadata, no id that is not a UUIDv7) is left out. Columns, by id:
//
//	1  timestamps   zigzag varint of the first row's Unix microseconds, a
//	                width byte w, then the w byte planes of the rows-1
//	                deltas (rows are sorted): all low bytes, then all second
//	                bytes... Each plane is its own zstd frame, so the entropy
//	                coder sees the skewed high bytes apart from the random
//	                low ones (1.55 B/log against 1.8 for varints).
//	2  id prefixes  a uvarint per row: for a UUIDv7 (version 7, RFC
//	                variant), zigzag(the id's 48-bit millisecond prefix -
//	                the row's millisecond) << 1; for any other id, 1
//	3  id rests     the 74 random bits of each UUIDv7 (rand_a, rand_b; the
//	                version and variant bits are implied), packed LSB first
//	4  id raw       the 16 bytes of each other id
//	5  levels       one byte per row
//	6  sources      uvarint n, n sorted distinct sources (uvarint length +
//	                bytes), then one index per row: a byte when n <= 256,
//	                else a uvarint
//	7  message lengths  uvarint per row
//	8  message text the messages concatenated, each number taken out
//	                (see below) replaced by the byte 0xFE, and each byte
//	                0xFE or 0xFF of the message preceded by 0xFF (neither
//	                occurs in UTF-8, so real messages need no escape)
//	9  message numbers  uvarint per number taken out
//	10 trace kinds  one byte per row: 0 none, 1 same as the row before,
//	                2 32 lower-case hex characters, 3 anything else
//	11 trace hex    16 bytes per kind-2 row
//	12 trace other  uvarint length + bytes per kind-3 row
//	13 metadata shapes  uvarint n, then n keys: uvarint length + the key as
//	                written between its quotes, a mode byte (0 plain, 1
//	                dictionary) and, for a dictionary key, uvarint d <= 256
//	                and its d distinct values (uvarint length + JSON text);
//	                uvarint s, s shapes (uvarint count + that many key
//	                indexes: the keys of an object in order); then a uvarint
//	                per row: 0 no metadata (nil), 1 kept whole in column 17,
//	                2+i shape i
//	14 metadata value lengths  uvarint per value of a plain key
//	15 metadata values  the JSON text of each value of a plain key
//	16 metadata indexes  a byte per value of a dictionary key
//	17 metadata whole   uvarint length + bytes per row kept whole
//
// Values of shaped rows are grouped by key: all values of key 0 in row
// order, then those of key 1, and so on (in columns 14-15 for plain keys,
// 16 for dictionary keys).
//
// Metadata: a compact object ({"k":v,...}, no whitespace, any key order,
// duplicates kept) is split into a shape and per-key values, so values of
// the same key sit together and compress as a column; anything else
// (whitespace, not an object, empty but non-nil) is kept whole, so every
// metadata round-trips byte for byte. A key with few distinct values
// (region, status) becomes a dictionary and one byte per value, and each
// key's values are a zstd frame of their own. Both layouts were measured
// on the realistic mix of the tests (TestBytesPerLog prints both): split
// by key, metadata takes 3.9 B/log at 20,000 logs, against 8.3 for the
// whole JSON of each row compressed as one column. The repeated key
// names cost nothing, and values of one kind (user ids, regions,
// durations) compress far better side by side than interleaved.
//
// Numbers in messages: a run of ASCII digits not preceded by an ASCII
// letter (so "id=123", "10.0.3.4", "84ms", not "abc123"), of at most 19
// digits and without a leading zero (so it prints back the same), goes
// to its own column as a binary number. The text left is more repetitive
// (templates and words), the numbers compress as numbers: 24.5 B/log
// against 27.3 for the plain messages on the realistic mix.
//
// Each column is compressed with zstd unless that does not make it
// smaller, without zstd's checksum (4 bytes a column): keeping stored
// bytes intact is PostgreSQL's job (data checksums), and a malformed
// block is still rejected as it is decoded. A new format gets a
// new version byte; readers reject versions they do not know.
package block

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/logengine/logengine/store/logs"
)

// Version is the format version Encode writes.
const Version = 1

// MaxRows bounds a block's row count; the merger should aim far lower
// (tens of thousands of rows), so that one block decodes in milliseconds.
const MaxRows = 1 << 20

// maxColumnBytes bounds one decoded column: a block must fit in a
// PostgreSQL bytea (1 GiB) anyway.
const maxColumnBytes = 1 << 30

var (
	// ErrEmpty is returned when a block would have no rows.
	ErrEmpty = errors.New("block: no events")
	// ErrCorrupt is wrapped by every error about malformed block data.
	ErrCorrupt = errors.New("block: corrupt")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Column ids.
const (
	colTime = iota + 1
	colIDPrefix
	colIDRest
	colIDRaw
	colLevel
	colSource
	colMsgLen
	colMsg
	colMsgNum
	colTraceKind
	colTraceHex
	colTraceOther
	colMetaShape
	colMetaLen
	colMetaVal
	colMetaIdx
	colMetaWhole
	numCols
)

var colNames = [numCols]string{
	colTime: "timestamps", colIDPrefix: "id prefixes", colIDRest: "id rests",
	colIDRaw: "id raw", colLevel: "levels", colSource: "sources", colMsgLen: "message lengths",
	colMsg: "message text", colMsgNum: "message numbers", colTraceKind: "trace kinds", colTraceHex: "trace hex",
	colTraceOther: "trace other", colMetaShape: "metadata shapes",
	colMetaLen: "metadata lengths", colMetaVal: "metadata values",
	colMetaIdx: "metadata indexes", colMetaWhole: "metadata whole",
}

// Trace kinds.
const (
	traceNone = iota
	traceSame
	traceHex
	traceOther
)

// Column encodings.
const (
	encRaw = iota
	encZstd
)

// Metadata key modes.
const (
	keyPlain = iota
	keyDict
)

// Block is an encoded block and its summary. Store Data as is; store the
// summary's fields beside it, where a query can test them before reading
// Data.
type Block struct {
	Data    []byte
	Summary Summary
}

// Summary is a block's skip index, computed by Encode and Merge. A query
// reads it to skip blocks that cannot hold a match (MayMatch, or the same
// tests in SQL); it never rules out a block that does.
type Summary struct {
	// MinTime and MaxTime are the first and last rows' timestamps.
	MinTime, MaxTime time.Time
	Rows             int
	// Levels counts the rows of each level, by logs.Level code.
	Levels [logs.NumLevels]uint32
	// Sources lists the distinct sources, sorted.
	Sources []string
	// MessageBloom holds the trigrams of the lower-cased messages
	// (KeywordHashes), TraceBloom the trace ids (TraceHashes), MetaBloom
	// the top-level metadata key/value pairs (MetaHashes). See MayContain
	// for their layout.
	MessageBloom, TraceBloom, MetaBloom []byte
}

// Compression trades encoding speed for size. Any Codec reads blocks of
// every level.
type Compression int

// Measured on the realistic mix (20,000 logs, TestBytesPerLog and
// BenchmarkEncode on 2 shared cores): default 47.7 B/log of block data at
// about 440k logs/s, better 46.9 at 370k, best 45.5 at 130k. Fresh blocks
// want the default; the merger can afford better.
const (
	// CompressionDefault is zstd's default level (about zstd -3).
	CompressionDefault Compression = iota
	// CompressionFastest is about zstd -1.
	CompressionFastest
	// CompressionBetter is about zstd -7.
	CompressionBetter
	// CompressionBest is about zstd -11.
	CompressionBest
)

// Codec encodes and decodes blocks. zstd state is costly to create, so
// make one Codec per process (per Compression) and share it: its methods
// are safe for concurrent use. Close releases it.
type Codec struct {
	enc      *zstd.Encoder
	dec      *zstd.Decoder
	encoders sync.Pool // *encoder scratch space, reused across calls
}

// NewCodec returns a Codec writing blocks at the given compression.
func NewCodec(c Compression) (*Codec, error) {
	level := zstd.SpeedDefault
	switch c {
	case CompressionDefault:
	case CompressionBetter:
		level = zstd.SpeedBetterCompression
	case CompressionFastest:
		level = zstd.SpeedFastest
	case CompressionBest:
		level = zstd.SpeedBestCompression
	default:
		return nil, fmt.Errorf("block: unknown compression %d", c)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(false),
		zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, fmt.Errorf("block: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxColumnBytes),
		// DecodeAll then writes at most the column's declared raw size
		// into the buffer sized for it, and allocates nothing itself.
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("block: zstd decoder: %w", err)
	}
	return &Codec{enc: enc, dec: dec}, nil
}

// Close releases the Codec's zstd state. The Codec must not be used after.
func (c *Codec) Close() {
	_ = c.enc.Close()
	c.dec.Close()
}

// Encode makes a block of events, sorted by (Timestamp, ID) ascending
// (Encode sorts a copy when they are not; equal keys keep their order).
// Decode gives back every field except ReceivedAt, byte for byte, with
// Timestamp in UTC: timestamps are stored in microseconds, as PostgreSQL
// keeps them, and a finer one is truncated. Levels must be valid and
// timestamps within ±290,000 years of 1970.
func (c *Codec) Encode(events []logs.Event) (Block, error) {
	if len(events) == 0 {
		return Block{}, ErrEmpty
	}
	if len(events) > MaxRows {
		return Block{}, fmt.Errorf("block: %d events, more than the %d a block holds", len(events), MaxRows)
	}
	e, _ := c.encoders.Get().(*encoder)
	if e == nil {
		e = newEncoder()
	}
	defer c.encoders.Put(e)
	return e.encode(c.enc, events)
}

// Decode returns every event of a block, in (Timestamp, ID) order.
func (c *Codec) Decode(data []byte) ([]logs.Event, error) {
	r, err := c.NewReader(data)
	if err != nil {
		return nil, err
	}
	return r.All()
}

// Merge makes one block of the rows of several, sorted by (Timestamp, ID)
// (rows with equal keys keep the order of the blocks given). Every row is
// kept, duplicates included: the counts already taken from the inputs
// (rollups) stay true of the output.
func (c *Codec) Merge(blocks ...[]byte) (Block, error) {
	var all []logs.Event
	for i, data := range blocks {
		evs, err := c.Decode(data)
		if err != nil {
			return Block{}, fmt.Errorf("block: merge input %d: %w", i, err)
		}
		if all == nil {
			all = make([]logs.Event, 0, len(evs)*len(blocks))
		}
		all = append(all, evs...)
	}
	return c.Encode(all)
}
