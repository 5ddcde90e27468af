package query

import (
	"net/url"
	"testing"
	"time"

	"github.com/logengine/logengine/cache"
)

// BenchmarkParseSearch is the per-request cost of turning query parameters
// into a filter.
func BenchmarkParseSearch(b *testing.B) {
	v, _ := url.ParseQuery("logLevel=error,warn&source=db-service,auth-service&keyword=timeout&size=50&meta.region=eu")
	raw := rawSearch{LogLevel: v.Get("logLevel"), Source: v.Get("source"), Keyword: v.Get("keyword"), Size: v.Get("size"), Meta: MetaParams(v)}
	now := time.Now()
	lim := DefaultLimits()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseSearch(raw, now, lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheKey is the cost of a normalised, hashed cache key.
func BenchmarkCacheKey(b *testing.B) {
	v, _ := url.ParseQuery("logLevel=error,warn&source=db-service&keyword=timeout&size=50")
	q, err := parseSearch(rawSearch{LogLevel: v.Get("logLevel"), Source: v.Get("source"), Keyword: v.Get("keyword"), Size: v.Get("size")}, time.Now(), DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	var c *cache.Cache // the key needs no connection
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Key("search", searchKey(q)...)
	}
}
