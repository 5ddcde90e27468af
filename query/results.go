package query

import (
	"bytes"
	"context"
	"strconv"

	"github.com/logengine/logengine/store/logs"
)

// countPage adds a search page's rows to the request's result count (the
// audit log reads it). The page may come from the cache, so the count is
// read from the page itself: its footer, after the content, ends the body,
// so the last "numberOfElements" is the footer's.
func countPage(ctx context.Context, page []byte) {
	if n, ok := pageRows(page); ok {
		logs.AddResults(ctx, n)
	}
}

func pageRows(page []byte) (int, bool) {
	const key = `"numberOfElements":`
	i := bytes.LastIndex(page, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := page[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return n, err == nil
}
