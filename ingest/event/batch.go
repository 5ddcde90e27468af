package event

import (
	"encoding/json"
	"errors"

	"github.com/logengine/logengine/store/logs"
)

// Batch is what ParseBatch found in a JSON array of events.
type Batch struct {
	// Len is how many elements the array has.
	Len int
	// Events are the valid events, in order.
	Events []logs.Event
	// Rejected are the elements that are not valid events, in order.
	Rejected []Rejected
}

// Rejected is an element of a batch that is not a valid event.
type Rejected struct {
	Index int
	// Raw is the element's JSON text, a slice of the body.
	Raw []byte
	Err Invalid
}

// ParseBatch parses a JSON array of events, as Parse parses each one, in
// one pass over the body: each element is read once, by the decoder that
// validates it. Only the first maxEvents elements are parsed; the rest are only
// checked, so that a batch over the limit is told apart from a malformed
// one without parsing it. A body that is not a well-formed JSON array
// gets encoding/json's error, and no events.
func ParseBatch(body []byte, def Defaults, lim Limits, maxEvents int) (Batch, error) {
	r := reader{data: body}
	if r.next() != '[' {
		return Batch{}, arrayError(body)
	}
	r.open()
	var b Batch
	if r.next() == ']' {
		r.pos++
		if !r.atEnd() {
			return Batch{}, arrayError(body)
		}
		return b, nil
	}
	for {
		r.ws()
		start := r.pos
		i := b.Len
		b.Len++
		switch {
		case i >= maxEvents:
			if !r.value() {
				return Batch{}, arrayError(body)
			}
		case r.pos < len(body) && body[r.pos] == '{':
			var f fields
			if !r.event(&f) {
				return Batch{}, arrayError(body)
			}
			ev, errs := f.build(def, lim)
			if errs != nil {
				b.Rejected = append(b.Rejected, Rejected{Index: i, Raw: body[start:r.pos], Err: errs})
				break
			}
			if b.Events == nil {
				// Elements are usually alike: guess the count from the first.
				b.Events = make([]logs.Event, 0, min(maxEvents, len(body)/(r.pos-start+1)+1))
			}
			b.Events = append(b.Events, ev)
		default:
			if !r.value() {
				return Batch{}, arrayError(body)
			}
			b.Rejected = append(b.Rejected, Rejected{
				Index: i, Raw: body[start:r.pos], Err: Invalid{{Field: "body", Problem: "an event must be a JSON object"}},
			})
		}
		switch r.next() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			if !r.atEnd() {
				return Batch{}, arrayError(body)
			}
			return b, nil
		default:
			return Batch{}, arrayError(body)
		}
	}
}

// arrayError is encoding/json's error for a body that is not a JSON array.
func arrayError(body []byte) error {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return err
	}
	return errors.New("not a JSON array")
}
