package block

import (
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/logengine/logengine/store/logs"
)

// Bloom filters. A filter is a []byte of m bits, m a multiple of 8; bit n
// is byte n/8, bit n%8 counted from the least significant bit, which is
// exactly PostgreSQL's get_bit(bytea, n). An item is hashed once with
// xxhash64; its k bit positions come from double hashing, and each is
// reduced to 63 bits so that it is a non-negative bigint in SQL. The
// item may be present iff bit (v mod m) is set for each of its k values:
//
//	SELECT ... WHERE coalesce(
//	    (SELECT bool_and(get_bit(bloom, (h % (length(bloom) * 8))::int) = 1)
//	     FROM unnest($1::bigint[]) h), true)
//
// (bool_and over no hashes is NULL: a query item that cannot prune, such
// as a keyword shorter than three bytes, has no hashes.) The values do
// not depend on m, so one list of hashes tests every block.
const (
	// BloomK is how many bits an item sets; 7 is optimal for 1 % false
	// positives.
	BloomK = 7
	// bloomBitsPerItemX10 is m/n (times 10) for 1 % false positives with
	// k = 7: -k / ln(1 - 0.01^(1/k)) = 9.59.
	bloomBitsPerItemX10 = 96
	// bloomMinBytes keeps the filter of a tiny block from saturating on
	// rounding; a filter is never empty, so the SQL modulo never divides
	// by zero.
	bloomMinBytes = 16
	// bloomMaxBytes bounds a filter at 1 MiB (8 Mi bits). It costs no
	// accuracy on text: lower-cased printable ASCII has 95³ ≈ 857k
	// trigrams, which fit at 1 % in about 1 MiB. Past the cap a filter is
	// fuller (more false positives), never wrong.
	bloomMaxBytes = 1 << 20
	hashMask      = 1<<63 - 1
)

// bloomBytes is the filter size for n distinct items.
func bloomBytes(n int) int {
	b := (n*bloomBitsPerItemX10/10 + 7) / 8
	return min(max(b, bloomMinBytes), bloomMaxBytes)
}

// itemHash is the one hash of an item; bloomValues expands it.
func itemHash(b []byte) uint64 { return xxhash.Sum64(b) }

// appendBloomValues appends the k 63-bit positions (before the modulo) of
// an item whose hash is h. The step is a second, independent-enough mix of
// h, made odd so that it is never 0.
func appendBloomValues(dst []uint64, h uint64) []uint64 {
	step := mix64(h) | 1
	for i := range uint64(BloomK) {
		dst = append(dst, (h+i*step)&hashMask)
	}
	return dst
}

// mix64 is the murmur3 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// newBloom builds a filter holding the items whose hashes are given.
// hashes is sorted and deduplicated in place: its length after that is
// the number of distinct items the filter is sized for.
func newBloom(hashes []uint64) []byte {
	slices.Sort(hashes)
	return newBloomDistinct(slices.Compact(hashes))
}

// newBloomDistinct is newBloom for hashes known to be distinct.
func newBloomDistinct(hashes []uint64) []byte {
	bloom := make([]byte, bloomBytes(len(hashes)))
	m := uint64(len(bloom)) * 8
	for _, h := range hashes {
		step := mix64(h) | 1
		for i := range uint64(BloomK) {
			bit := ((h + i*step) & hashMask) % m
			bloom[bit>>3] |= 1 << (bit & 7)
		}
	}
	return bloom
}

// MayContain reports whether a filter may hold the item whose values are
// hashes (from KeywordHashes, TraceHashes or MetaHashes): false means
// certainly absent. No hashes, or an empty filter, cannot rule anything
// out.
func MayContain(bloom []byte, hashes []uint64) bool {
	if len(bloom) == 0 {
		return true
	}
	m := uint64(len(bloom)) * 8
	for _, v := range hashes {
		bit := v % m
		if bloom[bit>>3]&(1<<(bit&7)) == 0 {
			return false
		}
	}
	return true
}

// KeywordHashes is what a keyword filter tests against a block's message
// filter: the values of every distinct trigram of the lower-cased
// keyword. A message containing the keyword (case-insensitively, as
// Filter.Keyword matches) contains each of them. A keyword of fewer than
// three bytes has no trigram and returns nil: it cannot prune.
func KeywordHashes(keyword string) []uint64 {
	kw := strings.ToLower(keyword)
	if len(kw) < 3 {
		return nil
	}
	hs := make([]uint64, 0, len(kw)-2)
	for i := 0; i+3 <= len(kw); i++ {
		hs = append(hs, itemHash([]byte(kw[i:i+3])))
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	out := make([]uint64, 0, len(hs)*BloomK)
	for _, h := range hs {
		out = appendBloomValues(out, h)
	}
	return out
}

// TraceHashes is what a trace id filter tests against a block's trace
// filter. The empty trace id (no filter) returns nil.
func TraceHashes(traceID string) []uint64 {
	if traceID == "" {
		return nil
	}
	return appendBloomValues(nil, itemHash([]byte(traceID)))
}

// MetaHashes is what a metadata filter (logs.MetaMatch{Key, Value}) tests
// against a block's metadata filter. It hashes the pair the way a
// matching top-level member was inserted: the value as the string it is,
// or, when it reads as a JSON number or boolean (and so also matches that
// type, as store.addMeta does), as the canonical text of that number or
// boolean, under which the block inserted both such numbers and strings
// that read as them.
func MetaHashes(key, value string) []uint64 {
	q := newMetaQuery(logs.MetaMatch{Key: key, Value: value})
	return appendBloomValues(nil, metaItemHash(nil, q.key, q.item()))
}

// metaItemHash hashes one key/value text pair, using buf as scratch. The
// NUL separator cannot occur in a key PostgreSQL stores.
func metaItemHash(buf []byte, key, val string) uint64 {
	buf = append(buf[:0], key...)
	buf = append(buf, 0)
	buf = append(buf, val...)
	return itemHash(buf)
}
