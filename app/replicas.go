package app

import (
	"context"
	"errors"
	"strings"

	"github.com/logengine/logengine/store"
)

// replicasHealth reports the read replicas on the gateway's health: an
// optional component, as the primary answers while none is healthy.
func replicasHealth(r *store.Replicas) component {
	return component{
		name: "replicas",
		check: func(context.Context) error {
			for _, s := range r.Status() {
				if s.Up {
					return nil
				}
			}
			return errors.New("no read replica is healthy: the primary answers every read")
		},
		details: func() map[string]any {
			out := map[string]any{}
			for _, s := range r.Status() {
				out[s.Name] = map[string]any{"up": s.Up, "lagSeconds": s.Lag.Seconds()}
			}
			return out
		},
	}
}

// redactList is redactURL of each item of a comma list (a list of
// replica URLs holds a password per item).
func redactList(v string) string {
	items := strings.Split(v, ",")
	for i, it := range items {
		items[i] = redactURL(it)
	}
	return strings.Join(items, ",")
}
