package store

// MinuteCounts decodes a row of the minute rollups: count by cell, where
// cell = minute*logs.NumLevels + level.
func MinuteCounts(b []byte) (map[int]int64, error) {
	var c minuteCells
	if err := c.add(b); err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for i, n := range c {
		if n != 0 {
			out[i] = n
		}
	}
	return out, nil
}
