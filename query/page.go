package query

import (
	"bytes"
	"context"
	"math"

	"github.com/logengine/logengine/store/logs"
)

// minResponseBytes is the least --max-response-bytes: room for a page's
// fields and a log of ordinary size.
const minResponseBytes = 16 << 10

// fetchChunk is how many logs the first store call of a large page reads.
// A log holds at most a 64 KiB message and 16 KiB of metadata by default,
// so a chunk decoded in memory is a few megabytes at worst; later calls
// read as many logs as the bytes left should hold, judged by the largest
// log seen so far.
const fetchChunk = 100

// pageFooterReserve is kept free in the byte bound for the fields after
// the content (totals, flags, the cursor).
const pageFooterReserve = 512

// boundedPage answers a search page whose JSON stays within
// MaxResponseBytes. It reads the page from the store in chunks, each
// continuing after the last log of the one before, and writes each log as
// it comes; when the next log would pass the bound the page ends there,
// with a nextCursor after its last log, exactly as a full page ends.
func (s *Service) boundedPage(ctx context.Context, q logs.Search) ([]byte, error) {
	w := pageWriter{max: s.cfg.MaxResponseBytes, showTenant: len(q.Tenants) > 1}
	w.buf.WriteString(`{"content":[`)
	first := q
	first.Size = min(q.Size, fetchChunk)
	if q.After == nil && q.Page > 0 && first.Size < q.Size {
		// Offset pages in chunks whose size divides the page's, so the
		// first chunk starts where the page does.
		first.Size = largestDivisorAtMost(q.Size, fetchChunk)
		first.Page = q.Page * q.Size / first.Size
	}
	page, err := s.store.Search(ctx, first)
	if err != nil {
		return nil, err
	}
	total, estimate := page.Total, page.TotalIsEstimate
	var next *logs.Cursor
	for {
		for _, e := range page.Events {
			if w.n == q.Size {
				break
			}
			added, err := w.add(e)
			if err != nil {
				return nil, err
			}
			if !added {
				// The page is full by bytes; it goes on after its last log.
				next = &w.last
				break
			}
		}
		if next != nil {
			break
		}
		if w.n == q.Size || page.Next == nil {
			if page.Next != nil || w.n < len(page.Events) {
				next = &w.last
			}
			break
		}
		more := q
		more.Page, more.After = 0, &w.last
		more.Size = min(q.Size-w.n, max(1, (w.max-w.buf.Len())/max(w.largest, 1)))
		more.CountLimit = 1 // the first call counted
		if page, err = s.store.Search(ctx, more); err != nil {
			return nil, err
		}
	}
	return w.finish(q, total, estimate, next)
}

func largestDivisorAtMost(n, most int) int {
	for d := min(n, most); d > 1; d-- {
		if n%d == 0 {
			return d
		}
	}
	return 1
}

// pageWriter writes a page's JSON one log at a time, within a byte bound.
type pageWriter struct {
	buf     bytes.Buffer
	max     int
	n       int         // logs written
	last    logs.Cursor // of the last log written
	largest int         // bytes of the largest log written
	// showTenant names each log's tenant: the page is of several.
	showTenant bool
}

// add writes e unless it would take the page past its bound; the first
// log is always written, so that every page moves a cursor walk on.
func (w *pageWriter) add(e logs.Event) (bool, error) {
	if !w.showTenant {
		e.Tenant = ""
	}
	b, err := Marshal(NewLogJSON(e))
	if err != nil {
		return false, err
	}
	if w.n > 0 && w.buf.Len()+1+len(b)+pageFooterReserve > w.max {
		return false, nil
	}
	if w.n > 0 {
		w.buf.WriteByte(',')
	}
	w.buf.Write(b)
	w.n++
	w.last = logs.Cursor{TS: e.Timestamp, ID: e.ID}
	w.largest = max(w.largest, len(b))
	return true, nil
}

// pageFooter is the page object after its content.
type pageFooter struct {
	TotalElements    int64  `json:"totalElements"`
	TotalIsEstimate  bool   `json:"totalIsEstimate"`
	TotalPages       int64  `json:"totalPages"`
	Size             int    `json:"size"`
	Number           int    `json:"number"`
	NumberOfElements int    `json:"numberOfElements"`
	First            bool   `json:"first"`
	Last             bool   `json:"last"`
	Empty            bool   `json:"empty"`
	NextCursor       string `json:"nextCursor,omitempty"`
}

func (w *pageWriter) finish(q logs.Search, total int64, estimate bool, next *logs.Cursor) ([]byte, error) {
	f := pageFooter{
		TotalElements:    total,
		TotalIsEstimate:  estimate,
		TotalPages:       int64(math.Ceil(float64(total) / float64(q.Size))),
		Size:             q.Size,
		Number:           q.Page,
		NumberOfElements: w.n,
		First:            q.Page == 0 && q.After == nil,
		Last:             next == nil,
		Empty:            w.n == 0,
	}
	if next != nil {
		f.NextCursor = encodeCursor(*next)
	}
	b, err := Marshal(f)
	if err != nil {
		return nil, err
	}
	w.buf.WriteString("],")
	w.buf.Write(b[1:]) // without its opening brace
	return w.buf.Bytes(), nil
}
