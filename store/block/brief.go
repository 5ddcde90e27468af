package block

import (
	"time"

	"github.com/logengine/logengine/store/logs"
)

// Brief is what a count needs of a row: its time, level and source.
type Brief struct {
	Timestamp time.Time
	Level     logs.Level
	Source    string
}

// Briefs returns the time, level and source of the given rows, reading
// only those three small columns (counting the partial minutes at a
// window's edge must not decompress messages).
func (r *Reader) Briefs(rows []int) ([]Brief, error) {
	for _, load := range []func() error{r.loadTimes, r.loadLevels, r.loadSources} {
		if err := load(); err != nil {
			return nil, err
		}
	}
	out := make([]Brief, len(rows))
	for n, i := range rows {
		if i < 0 || i >= r.rows {
			return nil, corrupt("row %d of %d", i, r.rows)
		}
		out[n] = Brief{Timestamp: time.UnixMicro(r.micros[i]).UTC(), Level: logs.Level(r.levels[i]), Source: r.srcDict[r.srcIdx[i]]}
	}
	return out, nil
}
